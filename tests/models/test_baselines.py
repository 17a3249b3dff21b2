"""Baseline-specific behaviour: what each one learns from, and how it treats cold entities."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from thaw.evaluation.harness import fit_data
from thaw.evaluation.splits import make_split
from thaw.evaluation.synthetic import TOPIC_WORDS
from thaw.models.als import ALSRecommender
from thaw.models.content_knn import ContentKNN, ContentKNNTfidf
from thaw.models.features import tfidf_matrix
from thaw.models.random_baseline import RandomRecommender
from thaw.models.seed_mlp import SeedMLPRecommender


def _empty(n_rows: int, n_items: int) -> sp.csr_matrix:
    return sp.csr_matrix((n_rows, n_items), dtype=np.float32)


def _topics(snapshot) -> tuple[np.ndarray, np.ndarray]:
    """Each item's and user's synthetic topic (from the title word and the user attribute)."""
    item_topic = np.array([TOPIC_WORDS.index(t.split()[0]) for t in snapshot.items.titles])
    user_topic = np.array([int(a["topic"][1:]) for a in snapshot.users.attributes])
    return item_topic, user_topic


def test_random_is_seeded_per_user(snapshot) -> None:
    data = fit_data(snapshot, make_split(snapshot, "warm"))
    model = RandomRecommender(seed=1).fit(data)
    both = model.score(np.array([3, 7]), _empty(2, data.n_items))
    np.testing.assert_array_equal(both[1], model.score(np.array([7]), _empty(1, data.n_items))[0])
    assert not np.array_equal(both, RandomRecommender(seed=2).fit(data).score(np.array([3, 7]), _empty(2, data.n_items)))


def test_content_knn_places_cold_items_by_their_text(snapshot) -> None:
    split = make_split(snapshot, "cold-item", fold=0)
    data = fit_data(snapshot, split)
    model = ContentKNN(attribute_weight=0.0).fit(data)
    assert not model.uses_vectors_
    item_topic, user_topic = _topics(snapshot)
    users = np.flatnonzero(split.warm_users)[:20]
    scores = model.score(users, data.train[users])
    cold = np.flatnonzero(split.cold_items)
    best_cold = cold[np.argmax(scores[:, cold], axis=1)]
    # The user's own topic is the majority of their history, so it wins among cold items.
    assert (item_topic[best_cold] == user_topic[users]).mean() > 0.8


def test_content_knn_uses_pretrained_vectors_when_present(snapshot) -> None:
    item_topic, _ = _topics(snapshot)
    vectors = np.eye(8, dtype=np.float32)[item_topic]  # a perfect "encoder": one axis per topic
    with_vectors = dataclasses.replace(snapshot, items=dataclasses.replace(snapshot.items, text_vectors=vectors))
    data = fit_data(with_vectors, make_split(with_vectors, "cold-item", fold=1))
    model = ContentKNN(attribute_weight=0.0).fit(data)
    assert model.uses_vectors_
    user = np.flatnonzero(data.warm_users)[:1]
    scores = model.score(user, data.train[user])[0]
    history_topics = np.bincount(item_topic[data.train[user].indices], minlength=4) / data.train[user].nnz
    np.testing.assert_allclose(scores, history_topics[item_topic], atol=1e-6)  # mean cosine
    assert not ContentKNNTfidf(attribute_weight=0.0).fit(data).uses_vectors_


def test_tfidf_vocabulary_comes_from_fitted_rows_only() -> None:
    docs = ["red apple", "green apple", "zebra crossing"]
    matrix = tfidf_matrix(docs, np.array([True, True, False]))
    assert matrix.shape[1] == 3  # red, green, apple: "zebra" and "crossing" are unseen
    assert matrix[2].nnz == 0


def test_content_knn_borrows_history_for_cold_users_from_attribute_neighbours(snapshot) -> None:
    split = make_split(snapshot, "cold-user", fold=0)
    data = fit_data(snapshot, split)
    model = ContentKNN(attribute_weight=0.0, n_user_neighbors=10).fit(data)
    item_topic, user_topic = _topics(snapshot)
    cold = np.flatnonzero(split.cold_users)
    scores = model.score(cold, _empty(len(cold), data.n_items))
    best = np.argmax(scores, axis=1)
    assert (item_topic[best] == user_topic[cold]).mean() > 0.8
    # Without user attributes every warm user counts alike: one list for all.
    plain = dataclasses.replace(data, users=dataclasses.replace(data.users, attributes=[{}] * data.n_users))
    flat = ContentKNN(attribute_weight=0.0).fit(plain).score(cold, _empty(len(cold), data.n_items))
    assert np.allclose(flat, flat[0])


def test_als_knows_nothing_about_cold_items_and_recomputes_new_histories(snapshot) -> None:
    split = make_split(snapshot, "cold-item", fold=0)
    data = fit_data(snapshot, split)
    model = ALSRecommender(n_factors=8, n_iterations=5).fit(data)
    assert not model.model_.item_factors[split.cold_items].any()
    users = np.flatnonzero(split.warm_users)[:4]
    learned = model.score(users, data.train[users])
    np.testing.assert_allclose(learned, model.model_.user_factors[users] @ model.model_.item_factors.T, rtol=1e-5)
    reveal = sp.csr_matrix(data.train[users].toarray() * (np.arange(data.n_items) < 50))
    assert not np.allclose(model.score(users, reveal), learned)  # recalculated from the new history
    assert not model.score(users, _empty(4, data.n_items)).any()  # no history: nothing to say


def test_seed_model_leaves_cold_items_untrained(snapshot) -> None:
    split = make_split(snapshot, "cold-item", fold=0)
    data = fit_data(snapshot, split)
    model = SeedMLPRecommender(seed=4, max_epochs=3, patience=1, n_val_users=40).fit(data)
    init = model.model_.__class__(  # same seed: same init
        data.n_users, data.n_items, model.dim, tuple(model.hidden)
    )
    init.reset(torch.Generator().manual_seed(4))
    cold = torch.as_tensor(np.flatnonzero(split.cold_items))
    torch.testing.assert_close(model.model_.item_embedding.weight[cold], init.item_embedding.weight[cold])
    warm = torch.as_tensor(np.flatnonzero(split.warm_items))
    assert not torch.allclose(model.model_.item_embedding.weight[warm], init.item_embedding.weight[warm])
    assert 1 <= model.n_epochs_ <= 3 and model.best_val_recall_ >= 0
    users = np.arange(3)
    np.testing.assert_array_equal(  # an ID model ignores scoring-time history
        model.score(users, data.train[users]), model.score(users, _empty(3, data.n_items))
    )


def test_seed_model_reports_epochs(snapshot) -> None:
    epochs = []
    data = fit_data(snapshot, make_split(snapshot, "warm"))
    SeedMLPRecommender(max_epochs=2, patience=5, callback=lambda *a: epochs.append(a)).fit(data)
    assert [e[0] for e in epochs] == [0, 1]
    assert all(np.isfinite(e[1]) and 0 <= e[2] <= 1 for e in epochs)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (ContentKNN(text="bert"), "text must be"),
        (ContentKNN(text="vectors"), "needs ItemContent.text_vectors"),
        (ALSRecommender(n_factors=0), "n_factors"),
        (SeedMLPRecommender(hidden=()), "hidden"),
        (SeedMLPRecommender(learning_rate=0), "learning_rate"),
    ],
)
def test_bad_settings_raise_in_fit(snapshot, model, message: str) -> None:
    data = fit_data(snapshot, make_split(snapshot, "warm"))
    with pytest.raises(ValueError, match=message):
        model.fit(data)
