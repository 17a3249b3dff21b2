"""The snapshot: the store as arrays, the boundary every model and the evaluation use."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from thaw.data.dataset import EventWeights, build_snapshot, snapshot_from_records
from thaw.data.records import EVENT_TYPES, EventRecord, ItemRecord, UserRecord
from thaw.data.store import Store


def test_snapshot_from_a_store_keeps_ids_content_and_order(store: Store, tiny_records) -> None:
    users, items, events = tiny_records
    store.upsert_users(users)
    store.upsert_items(items)
    store.add_events(list(reversed(events)))  # inserted out of order: the snapshot sorts by time
    snap = build_snapshot(store)
    assert snap.user_ids == ["alice", "bob", "carol"]
    assert snap.item_ids == ["i1", "i2", "i3", "i4"]
    assert snap.item_index["i3"] == 2 and snap.user_index["carol"] == 2
    assert snap.items.titles[0] == "Dune"
    assert snap.items.documents() == [
        "Dune. desert planet spice", "Emma. matchmaking in Highbury", "Neuromancer. cyberspace heist", "Persuasion",
    ]
    assert snap.items.attributes[2] == {"genres": ["sci-fi"]}
    assert snap.item_derived[2] == {"tags": ["cyber"]}  # kept apart from content
    assert snap.users.texts[0] == "likes sci-fi"
    assert snap.events.user.tolist() == [0, 0, 1, 1, 2]
    assert snap.events.item.tolist() == [0, 2, 1, 3, 0]
    assert [EVENT_TYPES[t] for t in snap.events.type] == ["rating", "purchase", "click", "review", "view"]
    assert np.isnan(snap.events.value[1]) and snap.events.value[0] == 5.0
    assert np.all(np.diff(snap.events.time) > 0)


def test_generated_events_stay_out_unless_asked(store: Store, tiny_records) -> None:
    users, items, events = tiny_records
    store.upsert_users(users)
    store.upsert_items(items)
    store.add_events(events + [EventRecord("carol", "i4", "click", datetime(2025, 1, 1), generated=True)])
    assert len(build_snapshot(store).events) == 5
    assert len(build_snapshot(store, include_generated=True).events) == 6


def test_matrix_is_binary_or_keeps_the_strongest_event_per_pair() -> None:
    t = datetime(2024, 1, 1)
    snap = snapshot_from_records(
        [UserRecord("u"), UserRecord("v")],
        [ItemRecord("a"), ItemRecord("b")],
        [
            EventRecord("u", "a", "view", t),
            EventRecord("u", "a", "purchase", t + timedelta(seconds=1)),
            EventRecord("u", "a", "click", t + timedelta(seconds=2)),
            EventRecord("v", "b", "rating", t, value=4.0),
        ],
    )
    binary = snap.matrix()
    assert binary.toarray().tolist() == [[1.0, 0.0], [0.0, 1.0]]
    weights = EventWeights()
    weighted = snap.matrix(weights=weights).toarray()
    assert weighted[0, 0] == weights.purchase
    assert np.isclose(weighted[1, 1], weights.rating * 4.0 / 5.0)


def test_progress_hook_sees_every_stage(store: Store, tiny_records) -> None:
    users, items, events = tiny_records
    store.upsert_users(users)
    store.upsert_items(items)
    seen: list[tuple[str, int]] = []
    build_snapshot(store, progress=lambda stage, n: seen.append((stage, n)))
    assert seen == [("users", 3), ("items", 4)]
