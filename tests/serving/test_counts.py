"""Popularity, click and impression counters: incremental recounts equal full ones and read only new rows."""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np

from thaw.data.records import EventRecord, ImpressionRecord, now_utc


def quiet(engine) -> None:
    """Wait for the background thread's first recount; after it, none is due for 30 s unless asked."""
    deadline = time.monotonic() + 10
    while engine.counters.recounted_at == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def counts(engine) -> tuple[np.ndarray, ...]:
    n = engine.catalogue.n_rows
    c = engine.catalogue
    return c.popularity.view(n).copy(), c.clicks.view(n).copy(), c.impressions.view(n).copy()


def test_incremental_recount_adds_other_workers_rows_and_equals_a_full_recount(client, monkeypatch) -> None:
    engine = client.app.state.engine
    quiet(engine)
    engine.refresh_counts()  # full
    asked: list[tuple[int, int | None]] = []
    event_totals = engine.store.event_totals
    monkeypatch.setattr(engine.store, "event_totals", lambda after=0, upto=None: asked.append((after, upto)) or event_totals(after, upto))
    before = counts(engine)
    # Another worker stores events and impressions: this engine is not told.
    later = now_utc() + timedelta(seconds=1)
    engine.store.add_events([EventRecord("reader", "cook-1", "click", later), EventRecord("scifi-fan", "cook-1", "purchase", later)])
    engine.store.add_impressions([ImpressionRecord("cook-2", 0, "model", "req-x", later, "reader")] * 3)
    engine.counters.refresh()
    incremental = counts(engine)
    cook1, cook2 = engine.catalogue.row("cook-1"), engine.catalogue.row("cook-2")
    assert incremental[0][cook1] > before[0][cook1] and incremental[1][cook1] == before[1][cook1] + 2  # click, purchase
    assert incremental[2][cook2] == before[2][cook2] + 3
    last_event = engine.store.last_ids()[0]
    assert asked[-1][0] > 0 and asked[-1][1] == last_event  # only rows after the last count were read
    engine.refresh_counts()
    assert asked[-1] == (0, last_event)
    for a, b in zip(incremental, counts(engine), strict=True):
        np.testing.assert_allclose(a, b)


def test_a_deleted_item_is_zeroed_and_a_deleted_user_brings_a_full_recount(client) -> None:
    engine = client.app.state.engine
    quiet(engine)
    engine.refresh_counts()
    full_at = engine.counters.recounted_at
    engine.counters.refresh()
    assert engine.counters.recounted_at == full_at  # nothing asked for a full one
    love1 = engine.catalogue.row("love-1")
    assert engine.catalogue.popularity.view(engine.catalogue.n_rows)[love1] > 0
    assert client.delete("/items/love-1").status_code == 204
    assert engine.catalogue.popularity.view(engine.catalogue.n_rows)[love1] == 0  # at once, no recount
    engine.counters.refresh()
    zeroed = counts(engine)
    engine.refresh_counts()
    for a, b in zip(zeroed, counts(engine), strict=True):
        np.testing.assert_allclose(a, b)  # what a full recount finds
    full_at = engine.counters.recounted_at
    assert client.delete("/users/scifi-fan").status_code == 204
    engine.counters.refresh()
    assert engine.counters.recounted_at > full_at
    space1 = engine.catalogue.row("space-1")
    assert engine.catalogue.popularity.view(engine.catalogue.n_rows)[space1] == 0  # only the fan had it
