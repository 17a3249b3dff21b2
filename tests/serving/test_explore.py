"""The dashboard's read-only endpoints (/explore/...), its store queries and its static files."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from thaw.data.records import EventRecord
from thaw.data.store import Store
from thaw.serving.insights import evaluation_reports, summarise_attributes
from tests.conftest import T0
from tests.serving.test_models import ScaledContent


# ---------------------------------------------------------------------- store queries
def test_store_activity_queries(any_store: Store, tiny_records) -> None:
    users, items, events = tiny_records
    any_store.upsert_users(users)
    any_store.upsert_items(items)
    any_store.add_events(events)
    user_times, item_times = any_store.first_seen()
    # Created "now", but the events are older: each counts from its first event, i4 too (bob).
    assert sorted(user_times) == [T0, T0 + timedelta(minutes=2), T0 + timedelta(minutes=4)]
    assert sorted(item_times) == [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2), T0 + timedelta(minutes=3)]
    assert any_store.event_span() == (T0, T0 + timedelta(minutes=4))
    edges = [T0 - timedelta(seconds=1), T0 + timedelta(minutes=1), T0 + timedelta(minutes=4)]
    assert any_store.event_counts(edges) == [2, 3]
    assert [e.user for e in any_store.iter_events(item="i1")] == ["alice", "carol"]


def test_store_activity_of_an_empty_store(store: Store) -> None:
    assert store.first_seen() == ([], [])
    assert store.event_span() is None


# ---------------------------------------------------------------------- overview
def test_overview_counts_and_growth(make_client) -> None:
    c = make_client()
    c.post("/items", json=[{"id": "a", "title": "A"}, {"id": "b", "title": "B"}, {"id": "c", "title": "C"}])
    c.post("/users", json={"id": "u"})
    day = datetime(2024, 1, 1)
    c.post("/events", json=[
        {"user": "u", "item": "a", "type": "click", "timestamp": day.isoformat()},
        {"user": "u", "item": "b", "type": "view", "timestamp": (day + timedelta(days=2)).isoformat()},
    ])
    body = c.get("/explore/overview", params={"points": 3}).json()
    assert (body["users"], body["items"], body["events"], body["live_items"]) == (1, 3, 2, 3)
    assert body["events_by_type"] == {"click": 1, "view": 1}
    growth = body["growth"]
    # From the first event (2024) to item c's creation (now); the middle point is past both events.
    assert growth["times"][0] == "2024-01-01T00:00:00"
    assert growth["users"] == [1, 1, 1]
    assert growth["items"] == [1, 2, 3]
    assert growth["events"] == [1, 2, 2]
    assert c.get("/explore/overview", params={"points": 1}).status_code == 422


def test_overview_of_an_empty_store(make_client) -> None:
    body = make_client().get("/explore/overview").json()
    assert body["users"] == body["items"] == body["events"] == 0
    assert body["growth"] == {"times": [], "users": [], "items": [], "events": []}


# ---------------------------------------------------------------------- search, attributes, histories
def test_search_items_by_title_words_and_id(client: TestClient) -> None:
    found = client.get("/explore/items", params={"q": "paris LOVE"}).json()
    assert found["matches"] == 3
    assert [i["id"] for i in found["items"]][0] == "love-1"  # the rated one is the most popular
    assert client.get("/explore/items", params={"q": "cook-2"}).json()["items"][0]["id"] == "cook-2"
    popular = client.get("/explore/items", params={"limit": 2}).json()
    assert popular["matches"] == 8 and [i["id"] for i in popular["items"]] == ["space-1", "love-1"]
    assert client.get("/explore/items", params={"q": "nothing like this"}).json() == {"query": "nothing like this", "matches": 0, "items": []}


def test_attribute_summaries(client: TestClient) -> None:
    items = client.get("/explore/attributes", params={"of": "items"}).json()
    genre = items["attributes"][0]
    assert genre["name"] == "genre" and genre["kind"] == "categorical" and genre["distinct"] == 3
    assert dict(map(tuple, genre["values"])) == {"scifi": 3, "romance": 3, "food": 2}
    users = client.get("/explore/attributes").json()
    assert users["rows_read"] == 2
    assert users["attributes"][0] | {"values": None} == {
        "name": "age", "kind": "numeric", "count": 1, "distinct": 1, "values": None, "minimum": 30.0, "maximum": 30.0,
    }
    n, summaries = summarise_attributes([{"tags": ["a", "b"]}, {"tags": ["a"]}, {"flag": True}])
    assert n == 3 and summaries[0].kind == "list" and summaries[0].values == [("a", 2), ("b", 1)]
    assert summaries[1].kind == "categorical" and summaries[1].values == [("true", 1)]


def test_user_history_newest_first(client: TestClient) -> None:
    body = client.get("/explore/users/scifi-fan/history").json()
    assert body["n_events"] == 2 and body["attributes"] == {"age": 30}
    assert [e["item"] for e in body["events"]] == ["space-2", "space-1"]
    assert body["events"][0]["title"] == "Space station robots at war"
    assert len(client.get("/explore/users/scifi-fan/history", params={"limit": 1}).json()["events"]) == 1
    assert client.get("/explore/users/nobody/history").status_code == 404


def test_who_interacted_with_an_item(client: TestClient) -> None:
    body = client.get("/explore/items/love-1/users").json()
    assert body["n_users"] == 1 and body["n_events"] == 1
    assert body["users"][0] | {"last_timestamp": None} == {
        "user": "reader", "events": 1, "types": ["rating"], "last_value": 5.0, "last_timestamp": None,
    }
    assert client.get("/explore/items/cook-1/users").json()["users"] == []
    assert client.get("/explore/items/nope/users").status_code == 404


# ---------------------------------------------------------------------- audience
def _engine_vector(c: TestClient, user: str) -> np.ndarray:
    """The vector the engine itself builds for a request of `user` (first source with a signal)."""
    engine = c.app.state.engine
    queries = engine._queries(engine.profile_of(user), engine.model_state)
    return next(v for _, v in queries if v is not None)


def test_audience_matches_the_engines_own_scores_and_ranks(client: TestClient) -> None:
    body = client.get("/explore/items/space-3/audience", params={"k": 5}).json()
    assert body["source"] == "content" and body["users_total"] == 2 and body["users_scored"] == 2
    top = body["users"][0]
    assert top["user"] == "scifi-fan" and top["n_history"] == 2
    engine = client.app.state.engine
    item_vector = engine.content_index.vectors(np.array([engine.catalogue.row("space-3")]))[0]
    assert top["score"] == pytest.approx(float(_engine_vector(client, "scifi-fan") @ item_vector), abs=1e-5)
    recommended = [i["id"] for i in client.get("/users/scifi-fan/recommendations", params={"k": 8}).json()["items"]]
    assert top["rank"] == recommended.index("space-3") + 1
    # Someone who already interacted with the item is not its audience.
    assert "scifi-fan" not in [u["user"] for u in client.get("/explore/items/space-1/audience").json()["users"]]
    assert client.get("/explore/items/nope/audience").status_code == 404


def test_a_new_item_finds_its_audience_without_a_rebuild(client: TestClient) -> None:
    client.get("/explore/items/love-2/audience")  # builds and keeps the user vectors
    client.post("/items", json={"id": "love-9", "title": "Love letters from Paris"})
    body = client.get("/explore/items/love-9/audience").json()
    assert body["users"][0]["user"] == "reader"
    assert body["age_seconds"] > 0  # scored against the kept vectors


def test_audience_in_the_live_models_space(make_client, tmp_path: Path) -> None:
    from thaw.data.records import ItemRecord
    from tests.serving.conftest import CATALOGUE

    # The catalogue is stored before the model is swapped in (as `thaw serve --model` over a filled store).
    with Store(f"sqlite:///{tmp_path / 'serve.sqlite'}") as store:
        store.upsert_items([ItemRecord(i["id"], i["title"], None, i["attributes"]) for i in CATALOGUE])
    c = make_client({"model": ScaledContent(), "model_metrics": {"recall@20": 0.5}})
    c.post("/users", json=[{"id": "cook", "attributes": {"age": 40}}, {"id": "blank"}])
    c.post("/events", json={"user": "cook", "item": "cook-1", "type": "purchase"})
    body = c.get("/explore/items/cook-2/audience").json()
    assert body["source"] == "model" and body["model_version"].startswith("scaled")
    assert [u["user"] for u in body["users"]] == ["cook"]  # "blank" has no signal: popularity serves them
    engine = c.app.state.engine
    item_vector = engine.model_state.index.vectors(np.array([engine.catalogue.row("cook-2")]))[0]
    assert body["users"][0]["score"] == pytest.approx(float(_engine_vector(c, "cook") @ item_vector), abs=1e-5)


# ---------------------------------------------------------------------- evaluation reports
REPORT = {
    "scenario": "cold-item",
    "folds": 2,
    "dataset": "tiny",
    "encoder": "hash",
    "primary_ranking": "cold",
    "results": [
        {"model": "popularity", "metrics": {"recall@20": {"mean": 0.1, "std": 0.02, "per_fold": [0.08, 0.12]}}, "fit_seconds": 0.5},
        {"model": "content-knn", "metrics": {"recall@20": {"mean": 0.3, "std": None, "per_fold": [0.3, None]}}, "fit_seconds": 1.5},
    ],
}


def test_evaluation_reports_beside_the_live_model(make_client, tmp_path: Path) -> None:
    model_dir = tmp_path / "model-7"
    (model_dir / "evaluation").mkdir(parents=True)
    (model_dir / "evaluation" / "cold-item.json").write_text(json.dumps(REPORT))
    (model_dir / "evaluation" / "broken.json").write_text(json.dumps({"scenario": "warm", "folds": "two", "results": []}))
    c = make_client({"model": ScaledContent(), "model_metrics": {"recall@20": 0.25}}, model_dir=model_dir)
    body = c.get("/explore/evaluation").json()
    assert body["origin"] == "checkpoint" and body["directory"] == "model-7"
    assert body["live_metrics"] == {"recall@20": 0.25}
    assert body["live_model"] == ScaledContent.name  # the name reports give the live model's method
    assert [r["file"] for r in body["reports"]] == ["evaluation/cold-item.json"]
    report = body["reports"][0]
    assert report["results"][0] == REPORT["results"][0]
    assert report["results"][1]["metrics"]["recall@20"] == {"mean": 0.3, "std": None, "per_fold": [0.3, None]}
    assert body["errors"] == [{"file": "evaluation/broken.json", "error": "ValueError: field 'folds' must be a int"}]


def test_no_reports_without_a_model(client: TestClient, tmp_path: Path) -> None:
    body = client.get("/explore/evaluation").json()
    assert body["origin"] == "content" and body["reports"] == [] and body["directory"] is None
    assert body["live_model"] is None
    assert evaluation_reports(None) == [] and evaluation_reports(tmp_path) == []


# ---------------------------------------------------------------------- access and static files
def test_explore_needs_a_read_key_but_the_page_does_not(make_client) -> None:
    c = make_client(read_keys=frozenset({"r"}))
    assert c.get("/explore/overview").status_code == 401
    assert c.get("/explore/overview", headers={"Authorization": "Bearer r"}).status_code == 200
    page = c.get("/")
    assert page.status_code == 200 and "API key" in page.text


def test_static_files_and_security_headers(client: TestClient) -> None:
    page = client.get("/")
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/js/main.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/dashboard.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/nope.js").status_code == 404
    assert client.get("/static/..%2Fapp.py").status_code == 404
    assert client.get("/dashboard", follow_redirects=False).headers["location"] == "/"
    assert "/" not in client.get("/openapi.json").json()["paths"]


def test_iter_events_of_one_item_is_in_time_order(store: Store, tiny_records) -> None:
    users, items, events = tiny_records
    store.upsert_users(users)
    store.upsert_items(items)
    store.add_events(events + [EventRecord("bob", "i1", "view", T0 - timedelta(days=1))])
    assert [e.user for e in store.iter_events(item="i1")] == ["bob", "alice", "carol"]


def test_batch_histories_match_the_engines_profiles(make_client) -> None:
    """Same items, strongest weights and column order as Engine.profile_of, history_limit included."""
    from thaw.data.dataset import EventArrays
    from thaw.data.records import EVENT_TYPES
    from thaw.serving.audience import _history_matrix, build_user_vectors
    from tests.serving.conftest import CATALOGUE

    c = make_client(history_limit=4)
    c.post("/items", json=CATALOGUE)
    c.post("/users", json=[{"id": "a"}, {"id": "b"}])
    day = datetime(2024, 5, 1)
    sequence = [("a", "love-1", "view"), ("b", "cook-1", "click"), ("a", "love-2", "click"), ("a", "love-1", "purchase"),
                ("a", "cook-2", "view"), ("a", "space-1", "rating"), ("a", "love-3", "view"), ("b", "cook-1", "view")]
    c.post("/events", json=[
        {"user": u, "item": i, "type": t, "value": 3 if t == "rating" else None, "timestamp": (day + timedelta(hours=n)).isoformat()}
        for n, (u, i, t) in enumerate(sequence)
    ])
    engine = c.app.state.engine
    built = build_user_vectors(engine)
    for n, user in enumerate(built.user_ids):
        assert built.n_history[n] == len(engine.profile_of(user).rows)
    # The matrix behind the vectors, entry by entry, order included.
    events = list(engine.store.iter_events())
    position = {u: n for n, u in enumerate(built.user_ids)}
    arrays = EventArrays(
        np.array([position[e.user] for e in events], np.int32),
        np.array([engine.catalogue.row(e.item) for e in events], np.int32),
        np.array([EVENT_TYPES.index(e.type) for e in events], np.int8),
        np.array([np.nan if e.value is None else e.value for e in events], np.float32),
        np.zeros(len(events), np.int64),
    )
    history = _history_matrix(engine, arrays, len(built.user_ids), engine.catalogue.n_rows)
    for n, user in enumerate(built.user_ids):
        profile = engine.profile_of(user)
        lo, hi = history.indptr[n], history.indptr[n + 1]
        assert history.indices[lo:hi].tolist() == profile.rows.tolist()
        assert history.data[lo:hi] == pytest.approx(profile.strengths)
