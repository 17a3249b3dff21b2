"""Thompson sampling for low-exposure items: the draws, the slots, and the loop through the API."""

from __future__ import annotations

import numpy as np

from thaw.serving.config import ExplorationConfig
from thaw.serving.exploration import explore_positions, n_explore_slots, thompson_pick
from tests.serving.conftest import CATALOGUE


def test_slot_count_is_share_on_average() -> None:
    rng = np.random.default_rng(0)
    counts = [n_explore_slots(0.15, 10, rng) for _ in range(4000)]
    assert set(counts) == {1, 2}
    assert abs(np.mean(counts) - 1.5) < 0.05
    assert n_explore_slots(0.0, 10, rng) == 0 and n_explore_slots(1.0, 10, rng) == 10


def test_positions_spread_and_never_first() -> None:
    assert explore_positions(1, 10) == [6]
    assert explore_positions(2, 10) == [4, 7]
    assert explore_positions(0, 10) == []
    assert explore_positions(1, 1) == [0]
    assert all(0 < p < 10 for p in explore_positions(3, 10))


def test_thompson_prefers_items_that_get_clicked() -> None:
    config = ExplorationConfig()
    rng = np.random.default_rng(1)
    impressions = np.array([50.0, 50.0, 0.0])
    clicks = np.array([25.0, 0.0, 0.0])
    wins = np.zeros(3)
    for _ in range(2000):
        wins[thompson_pick(np.arange(3), impressions, clicks, 1, config, rng)[0].row] += 1
    # Item 0 (50% click rate) beats item 1 (0%); the unseen item 2 is explored often (uniform prior).
    assert wins[0] > wins[2] > wins[1]
    assert wins[1] < 20


def test_same_seed_same_draws() -> None:
    config = ExplorationConfig()
    picks = [
        thompson_pick(np.arange(5), np.zeros(5), np.zeros(5), 2, config, np.random.default_rng(7))
        for _ in range(2)
    ]
    assert picks[0] == picks[1]


def test_a_flush_returns_only_when_what_was_added_before_it_is_written() -> None:
    import threading
    import time

    from thaw.data.records import ImpressionRecord, now_utc
    from thaw.serving.exploration import ImpressionLog

    stored: list[ImpressionRecord] = []
    writing = threading.Event()

    def slow_write(batch: list[ImpressionRecord]) -> int:
        writing.set()
        time.sleep(0.3)
        stored.extend(batch)
        return len(batch)

    log = ImpressionLog(slow_write, interval=60)
    first = [ImpressionRecord("a", 0, "model", "r1", now_utc())]
    log.add(first)
    background = threading.Thread(target=log.flush)  # as the writer thread would, holding the batch
    background.start()
    assert writing.wait(5)
    log.flush()  # nothing new to write, but it must wait for the batch in flight
    assert [i.item for i in stored] == ["a"]
    log.add([ImpressionRecord("b", 0, "model", "r2", now_utc())])
    log.flush()
    assert [i.item for i in stored] == ["a", "b"]
    background.join()


def test_api_explores_logs_impressions_and_counts_clicks(make_client) -> None:
    c = make_client(exploration=ExplorationConfig(share=0.5, max_impressions=5, pool=50, seed=3))
    c.post("/items", json=CATALOGUE)
    c.post("/users", json={"id": "u"})
    c.post("/events", json={"user": "u", "item": "space-1", "type": "purchase"})
    seen_sources = set()
    for _ in range(20):
        body = c.get("/users/u/recommendations", params={"k": 4, "explain": "true"}).json()
        for item in body["items"]:
            seen_sources.add(item["source"])
            if item["source"] == "exploration":
                assert "little exposure" in item["reason"]["detail"]
    assert "exploration" in seen_sources
    engine = c.app.state.engine
    engine.impressions.flush()
    counts = engine.store.impression_counts()
    assert sum(counts.values()) == 20 * 4
    # After 80 impressions over 7 items every item has >= 5 impressions: no more exploration slots.
    body = c.get("/users/u/recommendations", params={"k": 4}).json()
    assert all(i["source"] != "exploration" for i in body["items"])
    # Clicks count towards an item's posterior.
    c.post("/events", json={"user": "u", "item": "love-1", "type": "click"})
    row = engine.catalogue.row("love-1")
    assert engine.catalogue.clicks.view(engine.catalogue.n_rows)[row] == 1
    engine.refresh_counts()
    assert engine.catalogue.clicks.view(engine.catalogue.n_rows)[row] == 1
    assert engine.catalogue.impressions.view(engine.catalogue.n_rows).sum() == 20 * 4 + 4
