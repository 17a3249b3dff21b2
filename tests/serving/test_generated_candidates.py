"""Generated feedback as exposure candidates: explored first for its users, never counted as real data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from thaw.data.generated import GeneratedPair, generated_by_user, write_generated
from thaw.data.records import UserRecord
from thaw.data.store import Store
from thaw.serving.config import ExplorationConfig
from thaw.serving.exploration import thompson_pick
from tests.serving.conftest import CATALOGUE

NEW = {"id": "new-1", "title": "Knitting wool socks by the fire", "attributes": {"genre": "craft"}}
K = 4


def _exploring(**changes: Any) -> ExplorationConfig:
    """share * K = 1: exactly one exploration slot per list. pool = 1: the pool's pick is the user's
    most relevant low-exposure row, so the draws cannot bring the new item in by chance."""
    return ExplorationConfig(**{"share": 0.25, "max_impressions": 1000, "pool": 1, "seed": 5, **changes})


def _server(make_client: Callable[..., TestClient], **changes: Any) -> TestClient:
    """CATALOGUE + one new item; `fan` and `other` with the same history; `new-1` generated for `fan` only."""
    c = make_client(exploration=_exploring(**changes))
    assert c.post("/items", json=[*CATALOGUE, NEW]).status_code == 200
    assert c.post("/users", json=[{"id": "fan"}, {"id": "other"}]).status_code == 200
    events = [{"user": u, "item": "space-1", "type": "purchase"} for u in ("fan", "other")]
    assert c.post("/events", json=events).status_code == 200
    engine = c.app.state.engine
    assert write_generated(engine.store, [GeneratedPair("fan", "new-1", 0.3, 1)]) == 1
    engine.refresh_counts()  # as the background recount does every stats_refresh_seconds
    return c


def _explored(c: TestClient, user: str, **params: Any) -> list[dict[str, Any]]:
    body = c.get(f"/users/{user}/recommendations", params={"k": K, **params}).json()
    return [item for item in body["items"] if item["source"] == "exploration"]


def test_a_generated_user_gets_the_new_item_in_their_exploration_slot(make_client) -> None:
    c = _server(make_client)
    for _ in range(6):
        fan = _explored(c, "fan", explain="true")
        assert [item["id"] for item in fan] == ["new-1"]
        assert "generated feedback" in fan[0]["reason"]["detail"] and "0.300" in fan[0]["reason"]["detail"]
        other = _explored(c, "other", explain="true")
        assert len(other) == 1 and other[0]["id"] != "new-1"
        assert "little exposure" in other[0]["reason"]["detail"]


def test_only_while_the_item_is_low_exposure(make_client) -> None:
    c = _server(make_client, max_impressions=2)
    assert [i["id"] for i in _explored(c, "fan")] == ["new-1"]
    assert [i["id"] for i in _explored(c, "fan")] == ["new-1"]
    engine = c.app.state.engine
    assert engine.catalogue.impressions.view(engine.catalogue.n_rows)[engine.catalogue.row("new-1")] == 2
    assert "new-1" not in [i["id"] for i in _explored(c, "fan")]


def test_the_setting_switches_it_off(make_client) -> None:
    c = _server(make_client, generated_candidates=False)
    assert c.app.state.engine.generated.of("fan") == []
    for _ in range(4):
        assert "new-1" not in [i["id"] for i in _explored(c, "fan")]


def test_generated_events_never_count_as_real_data(make_client) -> None:
    c = _server(make_client)
    engine = c.app.state.engine
    row = engine.catalogue.row("new-1")
    assert engine.catalogue.popularity.view(engine.catalogue.n_rows)[row] == 0.0
    assert engine.catalogue.clicks.view(engine.catalogue.n_rows)[row] == 0.0
    profile = engine.profile_of("fan")
    assert row not in profile.seen.tolist() and row not in profile.rows.tolist()
    assert {item for item, *_ in engine.store.event_totals()} == {"space-1"}
    history = c.get("/users/fan/history").json()
    assert "new-1" not in str(history)
    # Serving the generated item does not make it real either: only its impressions move.
    _explored(c, "fan")
    engine.refresh_counts()
    assert engine.catalogue.popularity.view(engine.catalogue.n_rows)[row] == 0.0
    assert engine.store.stats().events == 2 and engine.store.stats().generated_events == 1


def test_dropping_generated_events_removes_the_candidates(make_client) -> None:
    c = _server(make_client)
    engine = c.app.state.engine
    assert [i["id"] for i in _explored(c, "fan")] == ["new-1"]
    assert engine.drop_generated() == 1
    assert engine.generated.of("fan") == [] and engine.store.stats().generated_events == 0
    for _ in range(4):
        assert "new-1" not in [i["id"] for i in _explored(c, "fan")]


def test_a_deletion_elsewhere_reaches_the_worker_with_the_recount(make_client) -> None:
    c = _server(make_client)
    engine = c.app.state.engine
    assert [i["id"] for i in _explored(c, "fan")] == ["new-1"]
    engine.store.delete_generated_events()  # a script or another worker
    assert engine.generated.of("fan") == [("new-1", 0.3)]  # held until the next recount
    engine.refresh_counts()
    assert engine.generated.of("fan") == []
    assert "new-1" not in [i["id"] for i in _explored(c, "fan")]


def test_a_new_generation_of_the_same_size_is_read_again(make_client) -> None:
    c = _server(make_client)
    engine = c.app.state.engine
    # Replaces fan's pair with other's: same count, and SQLite may give the new row the old id.
    assert write_generated(engine.store, [GeneratedPair("other", "new-1", 0.5, 1)]) == 1
    engine.refresh_counts()
    assert engine.generated.of("fan") == [] and engine.generated.of("other") == [("new-1", 0.5)]
    assert [i["id"] for i in _explored(c, "other")] == ["new-1"]


@pytest.mark.parametrize("deleted", ["item", "user"])
def test_deleting_the_item_or_the_user_drops_the_candidates_at_once(make_client, deleted: str) -> None:
    c = _server(make_client)
    engine = c.app.state.engine
    path = "/items/new-1" if deleted == "item" else "/users/fan"
    assert c.delete(path).status_code == 204
    assert engine.generated.of("fan") == []
    if deleted == "user":  # re-created under the same id: a new person, with no generated feedback
        assert c.post("/users", json={"id": "fan"}).status_code == 200
        assert "new-1" not in [i["id"] for i in _explored(c, "fan")]


def test_generated_by_user_reads_every_user_most_confident_first(store: Store) -> None:
    from thaw.data.records import ItemRecord

    store.upsert_users([UserRecord(u) for u in ("u1", "u2")])
    store.upsert_items([ItemRecord(i, i) for i in ("a", "b", "c")])
    write_generated(store, [GeneratedPair("u1", "a", 0.2), GeneratedPair("u1", "b", 0.6), GeneratedPair("u2", "c", 0.1)])
    write_generated(store, [GeneratedPair("u1", "a", 0.9)], replace=False)  # a second pair for (u1, a)
    assert generated_by_user(store) == {"u1": [("a", 0.9), ("b", 0.6)], "u2": [("c", 0.1)]}
    assert generated_by_user(store, per_user=1) == {"u1": [("a", 0.9)], "u2": [("c", 0.1)]}


def test_generated_candidates_draw_from_real_counts_and_carry_their_confidence() -> None:
    config = ExplorationConfig()
    impressions = np.array([0.0, 100.0, 0.0])
    clicks = np.zeros(3)
    wins = np.zeros(3)
    rng = np.random.default_rng(0)
    for _ in range(500):
        pick = thompson_pick(np.array([0, 1]), impressions, clicks, 1, config, rng, np.array([0.1, 0.9]))[0]
        assert pick.generated == (0.1 if pick.row == 0 else 0.9)
        wins[pick.row] += 1
    # Row 1 is more confident but was shown 100 times without a click: the real posterior decides.
    assert wins[0] > 450


class _EqualDraws:
    """An rng stand-in whose every Beta draw is 0.5: only the tie-break can decide."""

    def beta(self, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
        return np.full(len(alpha), 0.5)


def test_equal_draws_go_to_the_more_confident_candidate() -> None:
    picks = thompson_pick(np.array([3, 4, 5]), np.zeros(6), np.zeros(6), 2, ExplorationConfig(), _EqualDraws(),
                          np.array([0.1, 0.7, 0.4]))
    assert [(p.row, p.generated) for p in picks] == [(4, 0.7), (5, 0.4)]
