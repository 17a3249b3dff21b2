"""The change log between workers: the store's side on every backend, and the reader's gap handling."""

from __future__ import annotations

from datetime import timedelta

import pytest

from thaw.data.records import EventRecord, ItemRecord, UserRecord, now_utc
from thaw.data.store import Store
from thaw.serving.sync import ChangeFeed


def test_item_writes_are_logged_in_their_transaction(any_store: Store) -> None:
    start = any_store.last_change()
    any_store.upsert_items([ItemRecord("a", "A"), ItemRecord("b", "B")])
    any_store.upsert_items([ItemRecord("a", "A"), ItemRecord("b", "B2")])  # only b changed
    any_store.update_item("a", title="A2")
    any_store.delete_item("b")
    assert not any_store.update_item("ghost", title="x") and not any_store.delete_item("ghost")
    any_store.upsert_users([UserRecord("u")])  # people and events are not catalogue changes
    any_store.add_events([EventRecord("u", "a", "click", now_utc())])
    logged = any_store.changes_after(start)
    assert [(kind, key) for _, kind, key in logged] == [("item", "a"), ("item", "b"), ("item", "b"), ("item", "a"), ("item", "b")]
    assert [i for i, _, _ in logged] == sorted(i for i, _, _ in logged)
    assert any_store.count_changes_after(start) == 5 and any_store.last_change() == logged[-1][0]
    assert any_store.changes_after(start, limit=2) == logged[:2]
    with pytest.raises(RuntimeError, match="roll back"):
        with any_store.transaction() as tx:  # a rolled-back write leaves no log row
            tx.upsert_items([ItemRecord("c", "C")])
            raise RuntimeError("roll back")
    assert any_store.last_change() == logged[-1][0]


def test_pruning_keeps_the_newest_row_and_ids_never_repeat(any_store: Store) -> None:
    any_store.upsert_items([ItemRecord(f"i{n}", "x") for n in range(3)])
    newest = any_store.last_change()
    assert any_store.prune_changes(now_utc() + timedelta(hours=1)) == 2
    assert [i for i, _, _ in any_store.changes_after(0)] == [newest]
    any_store.upsert_items([ItemRecord("i9", "x")])
    assert any_store.last_change() > newest


def test_user_version_changes_with_every_event(any_store: Store) -> None:
    assert any_store.user_version("nobody") is None
    any_store.upsert_users([UserRecord("u", {"age": 3})])
    any_store.upsert_items([ItemRecord("a", "A"), ItemRecord("b", "B")])
    user, first = any_store.user_version("u")
    assert user.attributes == {"age": 3} and first[1:] == (0, 0)
    any_store.add_events([EventRecord("u", "a", "rating", now_utc(), value=4.0), EventRecord("u", "b", "click", now_utc())])
    _, second = any_store.user_version("u")
    assert second[0] == first[0] and second[1] == 2 and second[2] > 0
    assert any_store.user_events(second[0]) == [("a", "rating", 4.0), ("b", "click", None)]
    any_store.delete_user("u")
    any_store.upsert_users([UserRecord("u")])
    _, again = any_store.user_version("u")
    assert again != second and again[1:] == (0, 0)


class FakeLog:
    """A change log whose rows become visible out of id order, as on PostgreSQL."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str, str]] = []

    def changes_after(self, change_id: int, *, limit: int = 5000) -> list[tuple[int, str, str]]:
        return sorted(r for r in self.rows if r[0] > change_id)[:limit]


def test_feed_waits_for_a_lower_id_that_commits_late_then_gives_up_on_it(monkeypatch) -> None:
    log = FakeLog()
    applied: list[list[str]] = []
    feed = ChangeFeed(log, applied.append, gap_seconds=10.0)  # type: ignore[arg-type]
    clock = [100.0]
    monkeypatch.setattr("thaw.serving.sync.time.monotonic", lambda: clock[0])
    log.rows += [(1, "item", "a"), (3, "item", "c")]  # id 2 is still in flight
    assert feed.poll() == 2 and applied == [["a", "c"]]
    assert feed.position == 1  # held below the hole
    assert feed.poll() == 0  # id 3 is not applied twice
    log.rows.append((2, "item", "b"))  # the late commit
    assert feed.poll() == 1 and applied[-1] == ["b"] and feed.position == 3
    log.rows.append((6, "item", "f"))  # 4 and 5 never commit (rolled back)
    feed.poll()
    assert feed.position == 3
    clock[0] += 11.0
    feed.poll()
    assert feed.position == 6
    log.rows += [(7, "item", "g"), (8, "item", "g")]  # the same item twice: reconciled once
    assert feed.poll() == 1 and applied[-1] == ["g"] and feed.position == 8
