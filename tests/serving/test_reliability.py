"""Against a real uvicorn process: concurrent retried ingestion, and SIGKILL during ingestion."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from thaw.data.store import Store
from tests.serving.live_server import LiveServer

N_CLIENTS = 8
N_EVENTS = 10_000
BATCH = 25


@pytest.fixture
def server(tmp_path: Path):
    live = LiveServer(f"sqlite:///{tmp_path / 'live.sqlite'}", tmp_path / "server.log", "--explore-share", "0").start()
    yield live
    live.stop()


def _seed(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/items", json=[{"id": f"i{n}", "title": f"item {n}"} for n in range(50)]).status_code == 200
        assert client.post("/users", json=[{"id": f"u{n}"} for n in range(N_CLIENTS)]).status_code == 200


def _post_with_retries(client: httpx.Client, batch: list[dict], rng: np.random.Generator) -> None:
    """Send until acknowledged; sometimes send again after an acknowledgement (a lost reply)."""
    while True:
        try:
            timeout = 0.002 if rng.random() < 0.05 else 30.0  # some requests time out mid-flight
            response = client.post("/events", json=batch, timeout=timeout)
            if response.status_code == 200:
                break
        except httpx.TimeoutException:
            continue
    if rng.random() < 0.2:
        assert client.post("/events", json=batch).status_code == 200


def test_concurrent_clients_with_retries_lose_and_duplicate_nothing(server: LiveServer, tmp_path: Path) -> None:
    _seed(server.url)
    errors: list[BaseException] = []

    def run(worker: int) -> None:
        rng = np.random.default_rng(worker)
        events = [
            {"user": f"u{worker}", "item": f"i{rng.integers(50)}", "type": "click", "idempotency_key": f"w{worker}-e{n}"}
            for n in range(N_EVENTS // N_CLIENTS)
        ]
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                for start in range(0, len(events), BATCH):
                    _post_with_retries(client, events[start : start + BATCH], rng)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(N_CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with Store(server.db_url, migrate=False) as store:
        keys = [e.idempotency_key for e in store.iter_events()]
    assert len(keys) == N_EVENTS
    assert set(keys) == {f"w{w}-e{n}" for w in range(N_CLIENTS) for n in range(N_EVENTS // N_CLIENTS)}


def test_sigkill_loses_no_acknowledged_event(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'kill.sqlite'}"
    live = LiveServer(db, tmp_path / "server.log", "--explore-share", "0").start()
    _seed(live.url)
    acknowledged: list[str] = []
    stop = threading.Event()

    def ingest() -> None:
        with httpx.Client(base_url=live.url, timeout=10) as client:
            n = 0
            while not stop.is_set():
                batch = [
                    {"user": "u0", "item": f"i{(n + j) % 50}", "type": "view", "idempotency_key": f"k{n + j}"}
                    for j in range(BATCH)
                ]
                try:
                    response = client.post("/events", json=batch)
                except httpx.HTTPError:
                    return  # the server died mid-request: this batch was never acknowledged
                if response.status_code == 200:
                    acknowledged.extend(e["idempotency_key"] for e in batch)
                n += BATCH

    thread = threading.Thread(target=ingest)
    thread.start()
    while len(acknowledged) < 2000:
        threading.Event().wait(0.01)
    live.kill()
    stop.set()
    thread.join()
    restarted = LiveServer(db, tmp_path / "server.log", "--explore-share", "0").start()
    try:
        assert httpx.get(restarted.url + "/users/u0").json()["n_events"] >= len(acknowledged)
    finally:
        restarted.stop()
    with Store(db, migrate=False) as store:
        stored = {e.idempotency_key for e in store.iter_events()}
    assert set(acknowledged) <= stored
