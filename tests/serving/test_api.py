"""The HTTP contract: shapes, fallback sources, freshness of items and events, errors.

Every test runs on SQLite, PostgreSQL and MariaDB (the latter two skip, with the reason, when the
server does not answer).
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import BACKENDS
from tests.serving.conftest import CATALOGUE


@pytest.fixture(params=BACKENDS)
def serve_db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database on each backend in turn."""
    return request.getfixturevalue(request.param)


def ids(response) -> list[str]:
    return [r["id"] for r in response.json()["items"]]


def test_known_user_gets_content_recommendations_without_seen_items(client: TestClient) -> None:
    r = client.get("/users/scifi-fan/recommendations", params={"k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["user"] == "scifi-fan" and body["model_version"] == "content"
    assert len(body["items"]) == 3
    assert {"space-1", "space-2"}.isdisjoint(ids(r))
    assert ids(r)[0] == "space-3"  # the remaining space item is the closest in content
    assert all(i["source"] == "content" for i in body["items"])


def test_exclude_seen_false_keeps_history(client: TestClient) -> None:
    r = client.get("/users/scifi-fan/recommendations", params={"k": 8, "exclude_seen": "false"})
    assert {"space-1", "space-2"} <= set(ids(r))


def test_explain_names_the_history_items(client: TestClient) -> None:
    r = client.get("/users/scifi-fan/recommendations", params={"k": 1, "explain": "true"})
    reason = r.json()["items"][0]["reason"]
    assert reason["items"] and set(reason["items"]) <= {"space-1", "space-2"}
    assert "close in content" in reason["detail"]


def test_new_event_changes_the_next_request(client: TestClient) -> None:
    before = ids(client.get("/users/reader/recommendations", params={"k": 2}))
    assert set(before) <= {"love-2", "love-3"}
    client.post("/events", json=[{"user": "reader", "item": "cook-1", "type": "purchase"},
                                 {"user": "reader", "item": "cook-1", "type": "purchase"}])
    after = client.get("/users/reader/recommendations", params={"k": 3}).json()["items"]
    assert "cook-1" not in [i["id"] for i in after]
    assert "cook-2" in [i["id"] for i in after]


def test_user_without_history_falls_back_to_popularity(client: TestClient) -> None:
    client.post("/users", json={"id": "nobody"})
    r = client.get("/users/nobody/recommendations", params={"k": 3, "explain": "true"})
    items = r.json()["items"]
    assert [i["source"] for i in items] == ["popularity"] * 3
    assert items[0]["id"] == "space-1"  # the purchase outweighs a click and a 5-star rating * 0.8
    assert items[0]["reason"]["detail"].startswith("popular")


def test_fallback_tops_up_when_catalogue_is_short(client: TestClient) -> None:
    r = client.get("/users/scifi-fan/recommendations", params={"k": 100})
    assert len(r.json()["items"]) == len(CATALOGUE) - 2


def test_onboarding_with_liked_items_and_attributes(client: TestClient) -> None:
    r = client.post("/recommendations", json={"liked_items": ["love-2"], "k": 2, "explain": True})
    assert r.status_code == 200
    body = r.json()
    assert body["user"] is None
    assert set(ids(r)) == {"love-1", "love-3"}
    assert body["items"][0]["reason"]["items"] == ["love-2"]
    r = client.post("/recommendations", json={"attributes": {"age": 20}})
    assert len(r.json()["items"]) == 10 - 2 or all(i["source"] == "popularity" for i in r.json()["items"])
    r = client.post("/recommendations", json={})
    assert all(i["source"] == "popularity" for i in r.json()["items"])


def test_onboarding_with_text_uses_content(client: TestClient) -> None:
    r = client.post("/recommendations", json={"text": "pasta cooking", "k": 2})
    assert set(ids(r)) == {"cook-1", "cook-2"}
    assert {i["source"] for i in r.json()["items"]} == {"content"}


def test_new_item_is_recommendable_when_post_returns(client: TestClient) -> None:
    client.post("/items", json={"id": "space-new", "title": "Star wars in deep space: robots at war"})
    r = client.get("/users/scifi-fan/recommendations", params={"k": 2})
    assert "space-new" in ids(r)
    assert "space-new" in ids(client.get("/items/space-1/similar", params={"k": 2}))


def test_similar_items(client: TestClient) -> None:
    r = client.get("/items/love-1/similar", params={"k": 2, "explain": "true"})
    assert r.status_code == 200
    assert set(ids(r)) == {"love-2", "love-3"}
    assert r.json()["items"][0]["reason"]["items"] == ["love-1"]


def test_item_crud(client: TestClient) -> None:
    r = client.get("/items/love-1")
    assert r.status_code == 200 and r.json()["title"] == "A love story in Paris"
    r = client.patch("/items/cook-1", json={"title": "Deep space war stars"})
    assert r.status_code == 200 and r.json()["title"] == "Deep space war stars"
    assert "cook-1" in ids(client.get("/users/scifi-fan/recommendations", params={"k": 2}))
    assert client.delete("/items/cook-1").status_code == 204
    assert client.get("/items/cook-1").status_code == 404
    assert "cook-1" not in ids(client.get("/users/scifi-fan/recommendations", params={"k": 10}))
    assert client.delete("/items/cook-1").status_code == 404
    assert client.patch("/items/nope", json={"title": "x"}).status_code == 404


def test_user_crud_and_forgetting(client: TestClient) -> None:
    r = client.get("/users/scifi-fan")
    assert r.status_code == 200 and r.json()["n_events"] == 2
    client.get("/users/scifi-fan/recommendations")  # logs impressions for the user
    assert client.delete("/users/scifi-fan").status_code == 204
    assert client.get("/users/scifi-fan").status_code == 404
    assert client.get("/users/scifi-fan/recommendations").status_code == 404
    assert client.delete("/users/scifi-fan").status_code == 404
    engine = client.app.state.engine
    engine.impressions.flush()
    assert all(e.user != "scifi-fan" for e in engine.store.iter_events())


def test_idempotency_keys(client: TestClient) -> None:
    event = {"user": "reader", "item": "love-2", "type": "click", "idempotency_key": "k-1"}
    assert client.post("/events", json=event).json() == {"inserted": 1, "updated": 0, "unchanged": 0}
    assert client.post("/events", json=[event, event]).json()["unchanged"] == 2
    stored = [e for e in client.app.state.engine.store.iter_events(user="reader") if e.idempotency_key == "k-1"]
    assert len(stored) == 1


def test_errors_name_the_field(client: TestClient) -> None:
    r = client.post("/events", json=[{"user": "reader", "item": "love-1", "type": "click"},
                                     {"user": "ghost", "item": "love-1", "type": "click"}])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", 1, "user"]
    r = client.post("/events", json={"user": "reader", "item": "love-1", "type": "like"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "type"
    r = client.post("/recommendations", json={"liked_items": ["love-1", "ghost"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "liked_items", 1]
    r = client.get("/users/reader/recommendations", params={"k": 0})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "k"]
    r = client.post("/items", json={"id": "", "title": "x"})
    assert r.status_code == 422
    r = client.post("/items", json={"id": "x", "title": "x", "surprise": 1})
    assert r.status_code == 422
    r = client.post(
        "/events",
        content='{"user": "reader", "item": "love-1", "type": "rating", "value": NaN}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code in (400, 422)
    assert client.get("/users/ghost/recommendations").status_code == 404
    assert client.get("/items/ghost/similar").status_code == 404


def test_limits(make_client) -> None:
    from thaw.serving.config import LimitsConfig

    c = make_client(limits=LimitsConfig(max_batch=2, max_body_bytes=2000, max_k=5), default_k=5)
    r = c.post("/items", json=[{"id": str(i)} for i in range(3)])
    assert r.status_code == 422 and "at most 2" in str(r.json())
    r = c.post("/items", json={"id": "big", "text": "x" * 5000})
    assert r.status_code == 413
    c.post("/items", json=[{"id": "a"}, {"id": "b"}])
    assert c.post("/recommendations", json={"k": 6}).status_code == 422
    assert c.get("/items/a/similar", params={"k": 6}).status_code == 422


def test_health_metrics_and_openapi(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["items"] == len(CATALOGUE) and health["auth"] == "open"
    client.get("/users/reader/recommendations")
    text = client.get("/metrics").text
    assert 'thaw_http_requests_total{method="GET",route="/users/{user_id}/recommendations",status="200"}' in text
    assert 'thaw_recommended_items_total{source="content"}' in text
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in ("/items", "/items/{item_id}", "/items/{item_id}/similar", "/users", "/users/{user_id}",
                 "/users/{user_id}/recommendations", "/events", "/recommendations", "/admin/train",
                 "/admin/models", "/health", "/metrics"):
        assert path in paths, path
    k = next(p for p in paths["/users/{user_id}/recommendations"]["get"]["parameters"] if p["name"] == "k")
    assert k["schema"]["maximum"] == 100
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_second_worker_syncs_items_through_the_store(client: TestClient, make_client) -> None:
    other = make_client(sync_seconds=3600.0)  # same SQLite file: another worker; it polls only when told
    client.post("/items", json={"id": "late", "title": "Late arrival"})
    client.patch("/items/space-3", json={"title": "Pasta cooking at home"})
    client.delete("/items/cook-2")
    engine = other.app.state.engine
    assert "late" not in engine.catalogue and "cook-2" in engine.catalogue
    assert engine.feed.poll() == 3  # the change log names the three items
    assert "late" in engine.catalogue and "cook-2" not in engine.catalogue
    assert engine.catalogue.title_of(engine.catalogue.row("space-3")) == "Pasta cooking at home"
    assert other.get("/items/late/similar").status_code == 200
    assert "space-3" in ids(other.get("/items/cook-1/similar", params={"k": 1}))
    assert engine.feed.poll() == 0
    assert engine.sync_catalogue() == (0, 0)  # the full reconciliation finds nothing left to do


def test_unknown_item_makes_the_worker_read_the_change_log(client: TestClient, make_client) -> None:
    other = make_client(sync_seconds=3600.0)
    client.post("/items", json={"id": "late", "title": "Late arrival"})
    assert other.get("/items/late/similar").status_code == 200
    assert other.post("/recommendations", json={"liked_items": ["late"]}).status_code == 200
