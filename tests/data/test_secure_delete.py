"""A forgotten user's data leaves the SQLite file itself, not only the tables."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from thaw.data.records import EventRecord, ItemRecord, UserRecord, now_utc
from thaw.data.store import Store

SECRET = "zq-private-bio-8812 likes obscure cinema"


def test_deleted_user_text_is_not_left_in_free_pages(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    store = Store(f"sqlite:///{path}")
    store.upsert_items([ItemRecord("i1", "A film")])
    store.upsert_users([UserRecord("u1", {"city": "nowhere"}, SECRET), UserRecord("u2", {}, "someone else")])
    store.add_events([EventRecord("u1", "i1", "review", now_utc(), None, SECRET)])
    with store.engine.begin() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    assert SECRET.encode() in path.read_bytes()  # the text really is on disk before the delete

    assert store.delete_user("u1")
    with store.engine.begin() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    store.close()
    leftovers = [p for p in tmp_path.iterdir() if SECRET.encode() in p.read_bytes()]
    assert leftovers == [], f"the deleted user's text is still in {leftovers}"
    reopened = Store(f"sqlite:///{path}")
    assert reopened.get_users(["u2"])[0].text == "someone else"
    reopened.close()
