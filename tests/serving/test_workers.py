"""Two real `thaw serve` processes on one PostgreSQL store stay consistent.

Items reach the other worker through the store's change log, polled every `sync_seconds` (0.05 s
by default): the bound asserted here, SYNC_BOUND, leaves room for a loaded CI machine. Users' histories are checked against the store
on every request, so an event posted to one worker counts on the other's very next request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import CATALOGUE
from tests.serving.live_server import LiveServer

SYNC_BOUND = 1.0  # seconds from a write returning on A to B serving it (sync_seconds 0.05 + apply + slack)


@pytest.fixture
def workers(postgres_url: str, tmp_path: Path) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    a = LiveServer(postgres_url, tmp_path / "a.log", "--explore-share", "0").start()  # migrates the new database
    b = LiveServer(postgres_url, tmp_path / "b.log", "--explore-share", "0").start()
    try:
        with httpx.Client(base_url=a.url, timeout=30) as client_a, httpx.Client(base_url=b.url, timeout=30) as client_b:
            yield client_a, client_b
    finally:
        a.stop()
        b.stop()


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [i["id"] for i in response.json()["items"]]


def within(bound: float, check: Callable[[], bool]) -> float:
    """Seconds until `check()` holds, polling every 20 ms; fails after `bound` seconds."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < bound, f"not within {bound} s"
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.postgres
def test_items_and_events_posted_to_one_worker_are_served_by_the_other(workers) -> None:
    a, b = workers
    assert a.post("/items", json=CATALOGUE).status_code == 200
    assert a.post("/users", json={"id": "fan"}).status_code == 200
    events = [{"user": "fan", "item": "space-1", "type": "purchase"}, {"user": "fan", "item": "space-2", "type": "click"}]
    assert a.post("/events", json=events).status_code == 200
    within(SYNC_BOUND, lambda: b.get("/health").json()["items"] == len(CATALOGUE))
    assert ids(b.get("/users/fan/recommendations", params={"k": 1})) == ["space-3"]

    # A new item: in B's similar-items of a related item and in B's recommendations for the fan.
    assert a.post("/items", json={"id": "space-new", "title": "Star wars in deep space: robots at war"}).status_code == 200
    within(SYNC_BOUND, lambda: "space-new" in ids(b.get("/items/space-1/similar", params={"k": 2})))
    assert "space-new" in ids(b.get("/users/fan/recommendations", params={"k": 2}))
    # B's similar-items of the new item itself works at once (an unknown id makes B read the log).
    assert a.post("/items", json={"id": "space-newer", "title": "Deep space robots"}).status_code == 200
    assert b.get("/items/space-newer/similar").status_code == 200

    # An event posted to A counts on B's very next request: the bought item is no longer offered.
    assert a.post("/events", json={"user": "fan", "item": "space-new", "type": "purchase"}).status_code == 200
    assert "space-new" not in ids(b.get("/users/fan/recommendations", params={"k": 5}))

    # Changes and deletes travel too.
    assert a.patch("/items/cook-1", json={"title": "Star wars in deep space, cooked"}).status_code == 200
    within(SYNC_BOUND, lambda: "cook-1" in ids(b.get("/items/space-3/similar", params={"k": 3})))
    assert a.delete("/items/space-3").status_code == 204
    assert b.get("/items/space-3").status_code == 404  # the store itself: at once
    within(SYNC_BOUND, lambda: "space-3" not in ids(b.get("/users/fan/recommendations", params={"k": 10})))
    assert b.get("/items/space-3/similar").status_code == 404

    # A forgotten user is forgotten by both.
    assert a.delete("/users/fan").status_code == 204
    assert b.get("/users/fan/recommendations").status_code == 404
