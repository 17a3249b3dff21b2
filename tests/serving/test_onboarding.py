"""POST /recommendations with ratings: weighed like stored rating events, validated field by field.

Every test runs on SQLite, PostgreSQL and MariaDB (the latter two skip, with the reason, when the
server does not answer).
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.serving.test_api import serve_db_url  # noqa: F401  (the fixture: every backend in turn)


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["items"]]


def error(response) -> dict:
    assert response.status_code == 422, response.text
    return response.json()["detail"][0]


def test_ratings_weigh_exactly_like_a_stored_users_rating_events(client: TestClient) -> None:
    ratings = [("space-1", 5.0), ("love-2", 2.0), ("cook-1", 3.5)]
    client.post("/users", json={"id": "twin"})
    events = [{"user": "twin", "item": item, "type": "rating", "value": value} for item, value in ratings]
    assert client.post("/events", json=events).status_code == 200
    stored = client.get("/users/twin/recommendations", params={"k": 5}).json()["items"]
    body = {"rated_items": [{"item": item, "value": value} for item, value in ratings], "k": 5}
    new = client.post("/recommendations", json=body).json()["items"]
    assert [i["id"] for i in new] == [i["id"] for i in stored]
    assert [i["score"] for i in new] == pytest.approx([i["score"] for i in stored], abs=1e-6)
    assert {i["source"] for i in new} == {"content"}
    engine = client.app.state.engine
    profile = engine.profile_new({}, [], None, ratings)
    weights = engine.config.weights
    assert profile.strengths.tolist() == pytest.approx([weights.rating * v / weights.max_rating for _, v in ratings])


def test_a_low_rating_is_a_weak_signal_not_a_like(client: TestClient) -> None:
    engine = client.app.state.engine
    liked = engine.profile_new({}, ["love-2"], None)
    low = engine.profile_new({}, [], None, [("love-2", 1.0)])
    high = engine.profile_new({}, [], None, [("love-2", 5.0)])
    assert low.strengths[0] < high.strengths[0] < liked.strengths[0]
    # The value decides which of two rated items pulls the list: the high one.
    space_high = {"rated_items": [{"item": "space-1", "value": 5}, {"item": "love-2", "value": 1}], "k": 1}
    love_high = {"rated_items": [{"item": "space-1", "value": 1}, {"item": "love-2", "value": 5}], "k": 1}
    assert ids(client.post("/recommendations", json=space_high))[0].startswith("space-")
    assert ids(client.post("/recommendations", json=love_high))[0].startswith("love-")


def test_rated_items_are_left_out_and_explain_the_list(client: TestClient) -> None:
    body = {"rated_items": [{"item": "cook-1", "value": 4}], "k": 3, "explain": True}
    r = client.post("/recommendations", json=body)
    assert "cook-1" not in ids(r)
    first = r.json()["items"][0]
    assert first["id"] == "cook-2" and first["reason"]["items"] == ["cook-1"]
    body["exclude_liked"] = False
    assert "cook-1" in ids(client.post("/recommendations", json=body))


def test_liked_and_rated_item_keeps_its_strongest_event(client: TestClient) -> None:
    engine = client.app.state.engine
    both = engine.profile_new({}, ["love-2"], None, [("love-2", 1.0)])
    assert both.strengths.tolist() == [engine.config.weights.purchase]
    r = client.post("/recommendations", json={"liked_items": ["love-2"], "rated_items": [{"item": "love-2", "value": 1}]})
    assert r.status_code == 200 and "love-2" not in ids(r)


def test_liked_items_alone_work_as_before(client: TestClient) -> None:
    r = client.post("/recommendations", json={"liked_items": ["love-2"], "k": 2})
    assert set(ids(r)) == {"love-1", "love-3"}
    assert client.post("/recommendations", json={"liked_items": ["love-2"], "rated_items": []}).status_code == 200


def test_rating_errors_name_the_field(client: TestClient) -> None:
    out = {"rated_items": [{"item": "love-1", "value": 4}, {"item": "love-2", "value": 9}]}
    detail = error(client.post("/recommendations", json=out))
    assert detail["loc"] == ["body", "rated_items", 1, "value"] and detail["type"] == "out_of_range"
    assert "1 to 5" in detail["msg"] and "'love-2'" in detail["msg"]
    low = {"rated_items": [{"item": "love-1", "value": 0}]}
    assert error(client.post("/recommendations", json=low))["loc"] == ["body", "rated_items", 0, "value"]
    twice = {"rated_items": [{"item": "love-1", "value": 4}, {"item": "love-1", "value": 2}]}
    detail = error(client.post("/recommendations", json=twice))
    assert detail["loc"] == ["body", "rated_items", 1, "item"] and detail["type"] == "duplicate"
    unknown = {"liked_items": ["love-1"], "rated_items": [{"item": "love-2", "value": 3}, {"item": "ghost", "value": 3}]}
    detail = error(client.post("/recommendations", json=unknown))
    assert detail["loc"] == ["body", "rated_items", 1, "item"] and detail["type"] == "unknown_reference"
    missing = error(client.post("/recommendations", json={"rated_items": [{"item": "love-1"}]}))
    assert missing["loc"] == ["body", "rated_items", 0, "value"]
    extra = error(client.post("/recommendations", json={"rated_items": [{"item": "love-1", "value": 3, "stars": 3}]}))
    assert extra["loc"] == ["body", "rated_items", 0, "stars"]
    as_map = error(client.post("/recommendations", json={"rated_items": {"love-1": 3}}))
    assert as_map["loc"] == ["body", "rated_items"]
    r = client.post(
        "/recommendations",
        content='{"rated_items": [{"item": "love-1", "value": NaN}]}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code in (400, 422)


def test_scale_widens_to_the_ratings_the_store_holds(client: TestClient) -> None:
    engine = client.app.state.engine
    assert engine.rating_scale == (1.0, 5.0)  # the store's only rating is a 5
    client.post("/events", json=[{"user": "reader", "item": "love-2", "type": "rating", "value": 0.5},
                                 {"user": "reader", "item": "love-3", "type": "rating", "value": 10}])
    assert engine.people.refresh_rating_scale() == (0.5, 10.0)  # the background recount does this
    body = {"rated_items": [{"item": "cook-1", "value": 0.5}, {"item": "space-1", "value": 10}]}
    assert client.post("/recommendations", json=body).status_code == 200
    body["rated_items"][1]["value"] = 10.5
    assert "0.5 to 10" in error(client.post("/recommendations", json=body))["msg"]


def test_liked_and_rated_items_share_one_limit(make_client) -> None:
    from thaw.serving.config import LimitsConfig

    c = make_client(limits=LimitsConfig(max_liked_items=2))
    c.post("/items", json=[{"id": "a", "title": "a"}, {"id": "b", "title": "b"}, {"id": "c", "title": "c"}])
    ok = {"liked_items": ["a"], "rated_items": [{"item": "b", "value": 3}]}
    assert c.post("/recommendations", json=ok).status_code == 200
    ok["rated_items"].append({"item": "c", "value": 3})
    detail = error(c.post("/recommendations", json=ok))
    assert detail["loc"] == ["body", "rated_items"] and "together" in detail["msg"]


def test_openapi_describes_rated_items(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/recommendations"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    new_user = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
    rated = new_user["properties"]["rated_items"]
    assert rated["type"] == "array" and rated["maxItems"] == 200
    item = schema["components"]["schemas"][rated["items"]["$ref"].rsplit("/", 1)[-1]]
    assert set(item["required"]) == {"item", "value"} and item["additionalProperties"] is False
    assert item["properties"]["value"]["type"] == "number"
    assert new_user["examples"][0]["rated_items"][0] == {"item": "181", "value": 5}
    errors = schema["paths"]["/recommendations"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
    assert errors["$ref"].endswith("/HTTPValidationError")  # the shape every 422 of this endpoint has
