"""The store contract: every backend (SQLite, PostgreSQL, MariaDB) passes the same suite."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from thaw.data.errors import UnknownReferenceError
from thaw.data.records import EventRecord, ImpressionRecord, ItemRecord, UserRecord, WriteResult
from thaw.data.schema import Base
from thaw.data.store import Store, text_hash

T0 = datetime(2024, 1, 1, 12, 0, 0)  # the first event of the `tiny_records` fixture


def _fill(store: Store, tiny_records) -> None:
    users, items, events = tiny_records
    store.upsert_users(users)
    store.upsert_items(items)
    store.add_events(events)


def test_migrations_create_exactly_the_orm_schema(any_store: Store) -> None:
    with any_store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_migrate_twice_is_harmless(any_store: Store) -> None:
    any_store.migrate()
    assert any_store.stats().users == 0


def test_round_trip_keeps_every_field(any_store: Store, tiny_records) -> None:
    _fill(any_store, tiny_records)
    users, items, events = tiny_records
    got_users = any_store.get_users(["carol", "alice", "nobody"])
    assert [u.id for u in got_users] == ["carol", "alice"]
    assert got_users[1].attributes == {"age": 31, "country": "NL"}
    assert got_users[1].text == "likes sci-fi"
    got_items = any_store.get_items(["i3"])
    assert got_items[0].title == "Neuromancer"
    assert got_items[0].attributes == {"genres": ["sci-fi"]}
    assert got_items[0].derived == {"tags": ["cyber"]}
    got_events = list(any_store.iter_events())
    assert [(e.user, e.item, e.type) for e in got_events] == [(e.user, e.item, e.type) for e in events]
    assert got_events[0].value == 5.0 and got_events[3].text == "lovely"
    assert got_events[0].timestamp == T0


def test_timestamps_keep_microseconds_and_become_utc(any_store: Store, tiny_records) -> None:
    users, items, _ = tiny_records
    any_store.upsert_users(users)
    any_store.upsert_items(items)
    moment = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    any_store.add_events([EventRecord("bob", "i1", "click", moment)])
    (event,) = list(any_store.iter_events())
    assert event.timestamp == datetime(2024, 5, 6, 5, 8, 9, 123456)


def test_reingesting_the_same_data_changes_nothing(any_store: Store, tiny_records) -> None:
    _fill(any_store, tiny_records)
    before = any_store.stats()
    users, items, events = tiny_records
    assert any_store.upsert_users(users) == WriteResult(0, 0, 3)
    assert any_store.upsert_items(items) == WriteResult(0, 0, 4)
    assert any_store.add_events(events) == WriteResult(0, 0, 5)
    assert any_store.stats() == before


def test_upsert_updates_changed_rows_only(any_store: Store, tiny_records) -> None:
    _fill(any_store, tiny_records)
    created = any_store.get_items(["i1"])[0].created_at
    result = any_store.upsert_items(
        [ItemRecord("i1", "Dune (1965)", "desert planet spice", {"genres": ["sci-fi"]}), ItemRecord("i9", "New")]
    )
    assert result == WriteResult(inserted=1, updated=1, unchanged=0)
    item = any_store.get_items(["i1"])[0]
    assert item.title == "Dune (1965)"
    assert item.created_at == created


def test_duplicate_idempotency_keys_in_one_batch_insert_once(any_store: Store, tiny_records) -> None:
    users, items, _ = tiny_records
    any_store.upsert_users(users)
    any_store.upsert_items(items)
    event = EventRecord("bob", "i2", "click", T0, idempotency_key="retry-1")
    assert any_store.add_events([event, event]) == WriteResult(inserted=1, unchanged=1)
    assert any_store.stats().events == 1


def test_events_without_a_key_are_appended(any_store: Store, tiny_records) -> None:
    users, items, _ = tiny_records
    any_store.upsert_users(users)
    any_store.upsert_items(items)
    event = EventRecord("bob", "i2", "click", T0)
    any_store.add_events([event])
    any_store.add_events([event])
    assert any_store.stats().events_by_type == {"click": 2}


def test_unknown_references_fail_and_write_nothing(any_store: Store, tiny_records) -> None:
    users, items, _ = tiny_records
    any_store.upsert_users(users)
    any_store.upsert_items(items)
    good = EventRecord("bob", "i2", "click", T0)
    with pytest.raises(UnknownReferenceError, match="'ghost'"):
        any_store.add_events([good, EventRecord("bob", "ghost", "click", T0)])
    with pytest.raises(UnknownReferenceError, match="user"):
        any_store.add_events([good, EventRecord("nobody", "i1", "click", T0)])
    assert any_store.stats().events == 0


def test_unknown_event_type_is_refused(any_store: Store, tiny_records) -> None:
    _fill(any_store, tiny_records)
    with pytest.raises(ValueError, match="'like'"):
        any_store.add_events([EventRecord("bob", "i2", "like", T0)])


def test_a_transaction_is_all_or_nothing(any_store: Store, tiny_records) -> None:
    users, items, _ = tiny_records
    with pytest.raises(UnknownReferenceError):
        with any_store.transaction() as tx:
            tx.upsert_users(users)
            tx.upsert_items(items)
            tx.add_events([EventRecord("alice", "missing", "view", T0)])
    stats = any_store.stats()
    assert (stats.users, stats.items, stats.events) == (0, 0, 0)


def test_stats_count_events_by_type_and_generated_apart(any_store: Store, tiny_records) -> None:
    _fill(any_store, tiny_records)
    any_store.add_events([EventRecord("carol", "i2", "click", T0, generated=True)])
    stats = any_store.stats()
    assert (stats.users, stats.items, stats.events) == (3, 4, 5)
    assert stats.events_by_type == {"click": 1, "purchase": 1, "rating": 1, "review": 1, "view": 1}
    assert stats.generated_events == 1
    assert len(list(any_store.iter_events())) == 5
    assert len(list(any_store.iter_events(include_generated=True))) == 6
    assert any_store.delete_generated_events() == 1
    assert any_store.stats().generated_events == 0


def test_iter_events_filters_by_user_and_time(any_store: Store, tiny_records) -> None:
    _fill(any_store, tiny_records)
    assert [e.item for e in any_store.iter_events(user="alice")] == ["i1", "i3"]
    later = list(any_store.iter_events(since=T0 + timedelta(minutes=2), batch_size=1))
    assert [e.idempotency_key for e in later] == ["e4", "e5"]


def test_iterators_stream_everything_in_batches(any_store: Store) -> None:
    any_store.upsert_users([UserRecord(f"u{n}") for n in range(1234)])
    any_store.upsert_items([ItemRecord(f"i{n}", f"title {n}") for n in range(321)])
    assert [u.id for u in any_store.iter_users(batch_size=100)] == [f"u{n}" for n in range(1234)]
    assert len(list(any_store.iter_items(batch_size=7))) == 321


def test_delete_user_forgets_events_and_cached_text_vector(any_store: Store, tiny_records) -> None:
    _fill(any_store, tiny_records)
    vector = np.arange(4, dtype=np.float32).tobytes()
    any_store.put_embeddings("enc", {text_hash("likes sci-fi"): (4, vector)})
    assert any_store.delete_user("alice") is True
    assert any_store.get_users(["alice"]) == []
    assert all(e.user != "alice" for e in any_store.iter_events(include_generated=True))
    assert any_store.get_embeddings("enc", [text_hash("likes sci-fi")]) == {}
    assert any_store.delete_user("alice") is False


def test_delete_and_update_items(any_store: Store, tiny_records) -> None:
    _fill(any_store, tiny_records)
    assert any_store.update_item("i2", title="Emma (1815)", attributes={"genres": ["classic"]})
    assert any_store.get_items(["i2"])[0].title == "Emma (1815)"
    assert not any_store.update_item("nope", title="x")
    with pytest.raises(ValueError, match="created_at"):
        any_store.update_item("i2", created_at=T0)
    assert any_store.delete_item("i1")
    assert {e.item for e in any_store.iter_events()} == {"i2", "i3", "i4"}


def test_embedding_cache_round_trip(any_store: Store) -> None:
    vectors = {f"h{n}": (3, np.full(3, n, np.float32).tobytes()) for n in range(700)}
    assert any_store.put_embeddings("minilm", vectors) == 700
    assert any_store.put_embeddings("minilm", vectors) == 0
    got = any_store.get_embeddings("minilm", ["h5", "h699", "absent"])
    assert set(got) == {"h5", "h699"}
    assert np.frombuffer(got["h5"][1], np.float32).tolist() == [5.0, 5.0, 5.0]
    assert any_store.get_embeddings("other-encoder", ["h5"]) == {}


def test_unicode_and_long_text_survive(any_store: Store) -> None:
    long_text = "Ünïcødé — 漢字 🎬 " * 5000  # ~85k characters, past MariaDB's plain TEXT
    any_store.upsert_items([ItemRecord("ü-1", "Amélie 🎬", long_text, {"città": "Roma"})])
    (item,) = any_store.get_items(["ü-1"])
    assert item.title == "Amélie 🎬" and item.text == long_text and item.attributes == {"città": "Roma"}


def test_impressions_are_logged_and_rows_of_unknown_items_or_users_skipped(any_store: Store, tiny_records) -> None:
    from sqlalchemy import select

    from thaw.data.schema import Impression

    _fill(any_store, tiny_records)
    shown = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    whole_second = datetime(2024, 5, 6, 9, 0, 0, tzinfo=timezone.utc)
    logged = [
        ImpressionRecord("i1", 0, "model", "req-1", shown, user="alice"),
        ImpressionRecord("i2", 1, "exploration", "req-1", shown, user="alice"),
        ImpressionRecord("gone", 2, "model", "req-1", shown, user="alice"),  # no such item
        ImpressionRecord("i1", 0, "popularity", "req-2", whole_second),  # someone not stored
        ImpressionRecord("i3", 0, "model", "req-3", whole_second, user="nobody"),  # no such user
    ]
    assert any_store.add_impressions(logged) == 3
    assert any_store.add_impressions([]) == 0
    assert any_store.impression_counts() == {"i1": 2, "i2": 1}
    with any_store.engine.connect() as conn:
        rows = conn.execute(
            select(Impression.request_id, Impression.user_id.is_(None), Impression.position, Impression.source, Impression.timestamp)
            .order_by(Impression.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("req-1", False, 0, "model", datetime(2024, 5, 6, 5, 8, 9, 123456)),
        ("req-1", False, 1, "exploration", datetime(2024, 5, 6, 5, 8, 9, 123456)),
        ("req-2", True, 0, "popularity", datetime(2024, 5, 6, 9, 0, 0)),
    ]
    # Stored as the ORM stores timestamps: comparisons in SQL order them correctly.
    with any_store.engine.connect() as conn:
        later = conn.execute(select(Impression.request_id).where(Impression.timestamp > datetime(2024, 5, 6, 8, 0))).all()
    assert [r[0] for r in later] == ["req-2"]
