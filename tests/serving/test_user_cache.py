"""Stored users' model vectors kept between requests: equal to a fresh computation, never stale."""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import pytest

from thaw.data.records import EventRecord, now_utc
from thaw.data.store import Store
from thaw.serving.queries import model_vectors
from thaw.serving.retrain import make_trainer
from thaw.serving.user_cache import UserVectorCache
from tests.serving.test_models import _tiny_config, _tiny_store


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A small ThawRecommender (attention history, attributes, user ids) trained on the tiny store."""
    url = f"sqlite:///{tmp_path_factory.mktemp('model') / 'train.sqlite'}"
    _tiny_store(url)
    with Store(url) as store:
        return make_trainer("hash", base_config=_tiny_config())(store, lambda progress: None).model


@pytest.fixture
def served(make_client, tmp_path, tiny_model):
    _tiny_store(f"sqlite:///{tmp_path / 'serve.sqlite'}")
    client = make_client({"model": tiny_model, "model_metrics": {}})
    engine = client.app.state.engine
    deadline = time.monotonic() + 30
    while engine.warmed_users == 0:  # the warm-up runs in the background after start
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return client


def fresh_vector(engine, user: str) -> np.ndarray:
    """The user tower run now, with no cache involved."""
    return model_vectors(engine, [engine.profile_of(user)], engine.model_state)[0]


def kept(engine, user: str) -> np.ndarray | None:
    from thaw.serving.user_cache import key_of

    profile = engine.profile_of(user)
    return engine.model_state.user_vectors.get(user, key_of(profile))


def test_warm_up_computes_every_stored_user_as_a_single_request_would(served) -> None:
    engine = served.app.state.engine
    cache = engine.model_state.user_vectors
    assert engine.warmed_users == 40 and len(cache) == 40
    for user in ("u0", "u1", "u17"):
        np.testing.assert_allclose(kept(engine, user), fresh_vector(engine, user), rtol=1e-5, atol=1e-6)


def test_requests_reuse_the_kept_vector_until_an_event_changes_it(served) -> None:
    engine = served.app.state.engine
    cache = engine.model_state.user_vectors
    before = kept(engine, "u1").copy()
    hits = cache.hits
    first = served.get("/users/u1/recommendations", params={"k": 3}).json()["items"]
    assert cache.hits == hits + 1 and {i["source"] for i in first} == {"model"}
    # Another process writes an event: the next request computes the vector again.
    engine.store.add_events([EventRecord("u1", "cook-1", "purchase", now_utc() + timedelta(seconds=1))])
    misses = cache.misses
    served.get("/users/u1/recommendations", params={"k": 3})
    assert cache.misses == misses + 1
    after = kept(engine, "u1")
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, fresh_vector(engine, "u1"), rtol=1e-5, atol=1e-6)


def test_attribute_change_content_change_and_delete_are_never_served_stale(served) -> None:
    engine = served.app.state.engine
    cache = engine.model_state.user_vectors
    # Attributes are part of the key.
    served.post("/users", json={"id": "u2", "attributes": {"group": "a"}})
    served.get("/users/u2/recommendations")
    np.testing.assert_allclose(kept(engine, "u2"), fresh_vector(engine, "u2"), rtol=1e-5, atol=1e-6)
    # An item re-encoded in place (its title changed) clears every kept vector.
    assert len(cache) > 1
    assert served.patch("/items/space-1", json={"title": "Cooking pasta in deep space"}).status_code == 200
    assert len(cache) == 0
    # A new item does not (no kept vector pooled it).
    served.get("/users/u3/recommendations")
    served.post("/items", json={"id": "new-1", "title": "Galaxies"})
    assert len(cache) == 1
    # Deleting the user drops their vector in this worker.
    assert served.delete("/users/u3").status_code == 204
    assert len(cache) == 0


def test_cache_is_least_recently_used_and_keyed_per_user() -> None:
    cache = UserVectorCache(2)
    cache.put("a", ("k1",), np.ones(2, np.float32))
    cache.put("b", ("k1",), np.zeros(2, np.float32))
    assert cache.get("a", ("k1",)) is not None  # a is now the most recent
    cache.put("c", ("k1",), np.ones(2, np.float32))
    assert cache.get("b", ("k1",)) is None and len(cache) == 2
    assert cache.get("a", ("k2",)) is None  # another key: not served
    cache.put("a", ("k2",), np.zeros(2, np.float32), if_absent=True)
    assert cache.get("a", ("k1",)) is not None  # if_absent kept the existing entry
    with pytest.raises(ValueError):
        cache.get("a", ("k1",))[0] = 5.0  # kept vectors are read-only


def test_similar_items_ignore_the_bias_and_popularity_prior(served) -> None:
    """Item queries drop the user-only coordinates: a new item (prior 0) close in content is similar."""
    engine = served.app.state.engine
    model = engine.model_state.model
    anchor = engine.catalogue.row("space-1")
    vector = engine.model_state.index.vectors(np.array([anchor]))
    query = model.item_queries(vector)
    width = model.model_.width
    assert model.dim == width + 2 and vector[0, width + 1] > 0  # the anchor has a popularity prior
    np.testing.assert_array_equal(query[0, width:], 0.0)
    np.testing.assert_array_equal(query[0, :width], vector[0, :width])
    served.post("/items", json={"id": "space-new", "title": "Star wars in deep space (extended version)"})
    similar = [i["id"] for i in served.get("/items/space-1/similar", params={"k": 2}).json()["items"]]
    assert similar[0] == "space-new"
