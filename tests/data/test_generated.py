"""Generated events in the store: marked, invisible to real-data readers, replaced and dropped cleanly."""

from __future__ import annotations

from datetime import datetime

import pytest

from thaw.data.dataset import build_snapshot
from thaw.data.generated import (
    GeneratedPair,
    drop_generated,
    exposure_candidates,
    items_with_real_events,
    read_generated,
    write_generated,
)
from thaw.data.records import EventRecord, ItemRecord, UserRecord
from thaw.data.store import Store


def _fill(store: Store) -> None:
    store.upsert_users([UserRecord(u) for u in ("u1", "u2", "u3")])
    store.upsert_items([ItemRecord(i, i) for i in ("old", "new1", "new2")])
    store.add_events([EventRecord("u1", "old", "purchase", datetime(2024, 1, 1)),
                      EventRecord("u2", "old", "click", datetime(2024, 1, 2))])


def test_generated_events_are_marked_and_never_counted_as_real(store: Store) -> None:
    _fill(store)
    written = write_generated(store, [GeneratedPair("u1", "new1", 0.4, 1), GeneratedPair("u3", "new1", 0.2, 2),
                                      GeneratedPair("u3", "new2", 0.7, 1)])
    assert written == 3
    stats = store.stats()
    assert stats.events == 2 and stats.generated_events == 3
    assert len(build_snapshot(store).events) == 2  # real data only
    assert len(build_snapshot(store, include_generated=True).events) == 5
    assert all(e.generated for e in store.iter_events(include_generated=True) if e.item != "old")
    assert items_with_real_events(store) == {"old"}
    assert [(p.user, p.item, p.confidence) for p in read_generated(store, item="new1")] == [
        ("u1", "new1", 0.4), ("u3", "new1", 0.2)]
    assert exposure_candidates(store, "u3") == [("new2", 0.7), ("new1", 0.2)]


def test_a_new_generation_replaces_the_old_one_of_its_items(store: Store) -> None:
    _fill(store)
    write_generated(store, [GeneratedPair("u1", "new1", 0.4), GeneratedPair("u3", "new2", 0.7)])
    write_generated(store, [GeneratedPair("u2", "new1", 0.9)])
    assert {(p.user, p.item) for p in read_generated(store)} == {("u2", "new1"), ("u3", "new2")}


def test_dropping_generated_events_leaves_real_ones(store: Store) -> None:
    _fill(store)
    write_generated(store, [GeneratedPair("u1", "new1", 0.4), GeneratedPair("u3", "new2", 0.7)])
    assert drop_generated(store, ["new1"]) == 1
    assert {p.item for p in read_generated(store)} == {"new2"}
    assert drop_generated(store) == 1
    assert store.stats().generated_events == 0 and store.stats().events == 2


def test_confidence_outside_0_1_is_refused() -> None:
    with pytest.raises(ValueError, match="confidence of \\(u, i\\)"):
        GeneratedPair("u", "i", 1.5)
