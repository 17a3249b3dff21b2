"""The two-tower network and the ThawRecommender estimator on tiny data (HashEncoder-sized vectors)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from thaw.data.dataset import ItemContent, UserContent
from thaw.encoders import HashEncoder
from thaw.evaluation.harness import fit_data
from thaw.evaluation.splits import make_split
from thaw.evaluation.synthetic import synthetic_snapshot
from thaw.models.base import EmbeddingModel, FitData, Recommender
from thaw.models.thaw_model import ThawConfig, ThawRecommender
from thaw.models.tower_data import EntityFeatures, item_table, user_table, whitening
from thaw.models.two_tower import TwoTower, TwoTowerConfig
from thaw.training.loop import TrainConfig

DIM = 16


def _features(n: int, rng: np.random.Generator, *, categories: int = 0, numeric: int = 0) -> EntityFeatures:
    text = rng.normal(size=(n, DIM)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    cat = None
    if categories:
        cat = sp.random(n, categories, density=0.3, format="csr", random_state=1, dtype=np.float32)
        cat.data[:] = 1.0
    num = rng.normal(size=(n, numeric)).astype(np.float32) if numeric else None
    return EntityFeatures(text, cat, num)


def _network(**overrides: object) -> TwoTower:
    config = TwoTowerConfig(
        n_users=5, n_items=7, text_dim=DIM, n_item_categories=3, n_item_numeric=2,
        n_user_categories=4, n_user_numeric=1, user_text_dim=DIM, **overrides,  # type: ignore[arg-type]
    )
    network = TwoTower(config)
    network.reset_parameters(torch.Generator().manual_seed(0))
    return network


def test_shapes_and_bias_coordinate() -> None:
    rng = np.random.default_rng(0)
    network = _network()
    items = _features(7, rng, categories=3, numeric=2)
    users = _features(5, rng, categories=4, numeric=1)
    table = item_table(network, items, np.ones(7, bool))
    assert table.shape == (7, network.width + 1)
    history = sp.csr_matrix(np.array([[1, 0, 1, 0, 0, 0, 0], [0] * 7, [0, 0, 0, 0, 0, 0, 0.5]] + [[0] * 7] * 2,
                                     dtype=np.float32))
    vectors = user_table(network, table, history, users, np.arange(5), np.arange(5), np.ones(5, bool),
                         max_history=8)
    assert vectors.shape == (5, network.width + 1)
    assert torch.all(vectors[:, -1] == 1.0)  # users end in 1, so item biases add to every score


def test_untrained_model_ranks_like_content_knn() -> None:
    """Identity projection and zero residuals: score = scale * mean cosine to the history."""
    rng = np.random.default_rng(1)
    config = TwoTowerConfig(n_users=3, n_items=30, text_dim=DIM, item_ids=False, user_ids=False,
                            history_shrinkage=0.0)
    network = TwoTower(config)
    network.reset_parameters(torch.Generator().manual_seed(0))
    items = _features(30, rng)
    table = item_table(network, items, np.zeros(30, bool))
    assert torch.allclose(table[:, :DIM], torch.from_numpy(items.text), atol=1e-6)
    history = sp.random(3, 30, density=0.2, format="csr", random_state=2, dtype=np.float32)
    history.data[:] = 1.0
    users = user_table(network, table, history, EntityFeatures(), np.zeros(3, int), np.zeros(3, int),
                       np.zeros(3, bool), max_history=30)
    scores = (users @ table.T).numpy()
    knn = np.asarray(history @ items.text @ items.text.T) / np.asarray(history.sum(1))
    np.testing.assert_allclose(scores, config.init_scale * knn, rtol=1e-4, atol=1e-4)


def test_empty_history_gets_attribute_only_vector_and_attention_weights_history() -> None:
    rng = np.random.default_rng(2)
    network = _network()
    with torch.no_grad():
        network.query.normal_(0, 1.0, generator=torch.Generator().manual_seed(3))
    items = _features(7, rng, categories=3, numeric=2)
    users = _features(2, rng, categories=4, numeric=1)
    table = item_table(network, items, np.ones(7, bool))
    empty = sp.csr_matrix((2, 7), dtype=np.float32)
    some = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0]], dtype=np.float32))
    args = (users, np.arange(2), np.arange(2), np.zeros(2, bool))
    v_empty = user_table(network, table, empty, *args, max_history=8)
    v_some = user_table(network, table, some, *args, max_history=8)
    assert torch.all(torch.isfinite(v_empty))
    assert not torch.allclose(v_empty, v_some)
    # A stronger event pulls the pooled vector towards its item.
    weighted = sp.csr_matrix(np.array([[1, 0.01, 0, 0, 0, 0, 0]] * 2, dtype=np.float32))
    v_weighted = user_table(network, table, weighted, *args, max_history=8)
    toward_first = (v_weighted - v_some)[:, :DIM] @ (table[0, :DIM] - table[1, :DIM])
    assert torch.all(toward_first > 0)


def test_whitening_evens_out_dominant_directions() -> None:
    rng = np.random.default_rng(4)
    # One direction carries most of the variance, as in sentence-encoder spaces.
    x = rng.normal(size=(500, 8)) * np.array([10.0, 1, 1, 1, 1, 1, 1, 0.5])
    mean, transform = whitening(x, 1.0)
    z = (x - mean) @ transform
    spread = np.linalg.eigvalsh(np.cov(z.T))
    assert spread.max() / spread.min() < 1.5  # full whitening: nearly isotropic
    assert np.mean(np.sum(z**2, axis=1)) == pytest.approx(1.0, rel=1e-4)
    _, centring = whitening(x, 0.0)
    np.testing.assert_allclose(centring / centring[0, 0], np.eye(8), atol=1e-5)  # exponent 0: centring only
    mean, partial = whitening(x, 0.5)
    ratio = np.linalg.eigvalsh(np.cov(((x - mean) @ partial).T))
    assert spread.max() / spread.min() < ratio.max() / ratio.min() < 400  # in between


def test_short_histories_shrink_towards_the_no_history_vector() -> None:
    network = TwoTower(TwoTowerConfig(n_users=2, n_items=40, text_dim=DIM, item_ids=False, user_ids=False))
    network.reset_parameters(torch.Generator().manual_seed(0))
    with torch.no_grad():
        network.shrinkage.fill_(math.log(math.e**2 - 1))  # kappa = 2
        network.empty_history.fill_(0.5)
    items = EntityFeatures(np.tile(np.eye(DIM, dtype=np.float32)[:1], (40, 1)))  # every item the same
    table = item_table(network, items, np.zeros(40, bool))
    one = sp.csr_matrix(([1.0], ([0], [0])), shape=(1, 40), dtype=np.float32)
    many = sp.csr_matrix(np.ones((1, 40), dtype=np.float32))
    args = (EntityFeatures(), np.zeros(1, int), np.zeros(1, int), np.zeros(1, bool))
    scale = network.log_scale.exp().item()
    v_one = user_table(network, table, one, *args, max_history=40)[0, :DIM] / scale
    v_many = user_table(network, table, many, *args, max_history=40)[0, :DIM] / scale
    item = table[0, :DIM]
    # trust = n / (n + 2): one item -> 1/3 of the item, 2/3 of the prior; forty items -> 40/42.
    torch.testing.assert_close(v_one, item / 3 + 0.5 * 2 / 3, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(v_many, item * 40 / 42 + 0.5 * 2 / 42, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- estimator
def _small_fit_data(scenario: str = "cold-item", seed: int = 0, n_items: int = 80) -> tuple[FitData, object]:
    snapshot = synthetic_snapshot(n_users=60, n_items=n_items, n_topics=4, interactions_per_user=10, seed=seed)
    split = make_split(snapshot, scenario, fold=0, n_folds=5, seed=seed)
    data = fit_data(snapshot, split)
    vectors = HashEncoder(dim=DIM).encode(snapshot.items.documents())
    return dataclasses.replace(data, items=dataclasses.replace(data.items, text_vectors=vectors)), snapshot


def _config(id_dim: int = 0, **train: object) -> ThawConfig:
    settings = {"epochs": 3, "batch_users": 16, "n_random_negatives": 16, "patience": 2} | train
    return ThawConfig(
        model=TwoTowerConfig(hidden=16, attr_dim=4, id_dim=id_dim), train=TrainConfig(**settings), encoder="hash"
    )


def test_estimator_satisfies_both_protocols_and_scores_every_item() -> None:
    data, _ = _small_fit_data()
    model = ThawRecommender(_config()).fit(data)
    assert isinstance(model, Recommender) and isinstance(model, EmbeddingModel)
    users = np.arange(5)
    scores = model.score(users, data.train[users])
    assert scores.shape == (5, data.n_items)
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("id_dim", [0, 8])
def test_cold_items_get_content_only_vectors_and_their_ids_never_train(id_dim: int) -> None:
    data, snapshot = _small_fit_data()
    data = dataclasses.replace(data, validation=None)  # no early stopping: every epoch trains
    model = ThawRecommender(_config(id_dim)).fit(data, item_ids=snapshot.item_ids, user_ids=snapshot.user_ids)
    cold = np.flatnonzero(~data.warm_items)
    warm = np.flatnonzero(data.warm_items)
    assert len(cold) and len(warm)
    content = model.encode_items(
        ItemContent([snapshot.items.titles[i] for i in cold], [None] * len(cold),
                    [snapshot.items.attributes[i] for i in cold]),
        [f"new-{i}" for i in cold],  # ids the model never saw: content only
    )
    np.testing.assert_allclose(model.item_vectors_[cold].numpy(), content, rtol=1e-5, atol=1e-5)
    if id_dim:  # ids have their own coordinates: a content-only vector has an all-zero id block
        d = model.model_.dim
        assert np.all(content[:, d : d + id_dim] == 0.0)
    # The id rows of cold items are exactly as initialised: no gradient ever reached them.
    fresh = TwoTower(model.model_config_)
    fresh.reset_parameters(torch.Generator().manual_seed(model.config_.train.seed))
    assert fresh.item_id is not None and model.model_.item_id is not None
    torch.testing.assert_close(model.model_.item_id.weight[cold], fresh.item_id.weight[cold])
    assert not torch.allclose(model.model_.item_id.weight[warm], fresh.item_id.weight[warm])
    # A warm item's vector carries its id part; the same content under an unknown id does not.
    warm_content = ItemContent([snapshot.items.titles[warm[0]]], [None], [snapshot.items.attributes[warm[0]]])
    with_id = model.encode_items(warm_content, [snapshot.item_ids[warm[0]]])
    without = model.encode_items(warm_content, ["someone-else"])
    np.testing.assert_allclose(with_id, model.item_vectors_[warm[:1]].numpy(), rtol=1e-5, atol=1e-5)
    assert not np.allclose(with_id, without)


def test_text_whitening_is_fitted_on_warm_items_only() -> None:
    data, _ = _small_fit_data(n_items=200)  # whitening needs several training items per dimension
    model = ThawRecommender(_config(epochs=1)).fit(data)
    cold = ~data.warm_items
    vectors = data.items.text_vectors.copy()
    vectors[cold] = np.random.default_rng(0).normal(size=(cold.sum(), DIM))  # other cold content
    other = dataclasses.replace(data, items=dataclasses.replace(data.items, text_vectors=vectors))
    again = ThawRecommender(_config(epochs=1)).fit(other)
    torch.testing.assert_close(model.model_.text_mean, again.model_.text_mean)
    torch.testing.assert_close(model.model_.text_transform, again.model_.text_transform)
    assert not torch.allclose(model.model_.text_transform, torch.eye(DIM))
    few, _ = _small_fit_data(n_items=40)  # too few items for a stable covariance: raw vectors
    assert torch.equal(ThawRecommender(_config(epochs=1)).fit(few).model_.text_transform, torch.eye(DIM))


def test_full_id_dropout_leaves_item_ids_untouched() -> None:
    data, _ = _small_fit_data()
    model = ThawRecommender(_config(item_id_dropout=1.0)).fit(data)
    fresh = TwoTower(model.model_config_)
    fresh.reset_parameters(torch.Generator().manual_seed(0))
    torch.testing.assert_close(model.model_.item_id.weight, fresh.item_id.weight)


@pytest.mark.parametrize("id_dim", [0, 8])
def test_onboarding_user_vector_follows_history_without_retraining(id_dim: int) -> None:
    data, snapshot = _small_fit_data("cold-user")
    model = ThawRecommender(_config(id_dim)).fit(data, item_ids=snapshot.item_ids, user_ids=snapshot.user_ids)
    items = model.encode_items(snapshot.items, snapshot.item_ids)
    newcomer = UserContent([{"topic": "t1"}], [None])
    n = len(items)
    none = model.encode_users(newcomer, ["brand-new"], sp.csr_matrix((1, n), dtype=np.float32), items)
    one = model.encode_users(newcomer, ["brand-new"], sp.csr_matrix(([1.0], ([0], [3])), shape=(1, n)), items)
    two = model.encode_users(newcomer, ["brand-new"], sp.csr_matrix(([1.0, 1.0], ([0, 0], [3, 7])), shape=(1, n)), items)
    assert none.shape == (1, model.dim)
    assert not np.allclose(none, one) and not np.allclose(one, two)
    # A warm user gets the learned id part on top of the same history.
    warm_user = int(np.flatnonzero(data.warm_users)[0])
    row = data.train[warm_user]
    content = UserContent([snapshot.users.attributes[warm_user]], [None])
    known = model.encode_users(content, [snapshot.user_ids[warm_user]], row, items)
    stranger = model.encode_users(content, ["stranger"], row, items)
    assert not np.allclose(known, stranger)
    np.testing.assert_allclose(known, model.encode_users(content, [snapshot.user_ids[warm_user]], row, items))


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    data, _ = _small_fit_data()
    a = ThawRecommender(_config(seed=3)).fit(data).model_.state_dict()
    b = ThawRecommender(_config(seed=3)).fit(data).model_.state_dict()
    c = ThawRecommender(_config(seed=4)).fit(data).model_.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_checkerboard_held_out_item_ranks_first() -> None:
    """Users like every other item; the one liked item held out of training must rank first."""
    n_users, n_items = 24, 24
    liked = np.array([[(u + i) % 2 == 0 for i in range(n_items)] for u in range(n_users)])
    held = np.array([np.flatnonzero(liked[u])[u % (n_items // 2)] for u in range(n_users)])
    train = liked.copy()
    train[np.arange(n_users), held] = False
    titles = [f"item {i} {'alpha beta gamma delta'.split()[i % 4]}" for i in range(n_items)]
    data = FitData(
        train=sp.csr_matrix(train.astype(np.float32)),
        items=ItemContent(titles, [None] * n_items, [{}] * n_items,
                          HashEncoder(dim=DIM).encode(titles)),
        users=UserContent([{}] * n_users, [None] * n_users),
        warm_users=np.ones(n_users, bool),
        warm_items=np.ones(n_items, bool),
    )
    config = ThawConfig(
        model=TwoTowerConfig(hidden=16),
        train=TrainConfig(epochs=40, batch_users=8, n_random_negatives=8, lr=0.01, item_id_dropout=0.2),
        encoder=None,
    )
    model = ThawRecommender(config).fit(data)
    scores = model.score(np.arange(n_users), data.train)
    scores[train] = -np.inf
    assert (scores.argmax(axis=1) == held).all()


def test_config_round_trips_and_rejects_bad_values() -> None:
    config = _config(loss="bpr", user_modes=(1.0, 0.0, 0.0, 0.0))
    assert ThawConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(loss="hinge")
    with pytest.raises(ValueError, match="item_id_dropout"):
        TrainConfig(item_id_dropout=1.5)
    with pytest.raises(ValueError, match="unknown train settings"):
        ThawConfig.from_dict({"train": {"epochz": 3}})
    with pytest.raises(ValueError, match="hidden"):
        TwoTowerConfig(hidden=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        ThawRecommender().score(np.arange(1), sp.csr_matrix((1, 1)))


def test_als_init_starts_the_id_block_at_the_als_scores() -> None:
    from thaw.models.als import ALSRecommender

    data, _ = _small_fit_data(scenario="warm")
    config = _config(id_dim=8, epochs=1)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, id_init="als", als_alpha=2.0))
    model = ThawRecommender(config)
    # Epoch 0 only: the learning rates are never applied, so the id blocks are ALS's factors.
    model.config = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=1, lr=1e-12, id_lr=1e-12))
    model.fit(dataclasses.replace(data, validation=None))
    als = ALSRecommender(seed=0, n_factors=8, regularization=config.model.als_regularization, alpha=2.0).fit(data)
    d = model.model_.dim
    assert model.model_.user_id is not None and model.model_.item_id is not None
    users = np.flatnonzero(data.warm_users)[:5]
    id_scores = model.model_.user_id.weight[users].detach().numpy() @ model.model_.item_id.weight[:, :8].detach().numpy().T
    np.testing.assert_allclose(id_scores, als.score(users, data.train[users]), rtol=1e-3, atol=1e-4)
    # Cold items keep an all-zero id block, and a cold item's vector is content only.
    cold = np.flatnonzero(~data.warm_items)
    if len(cold):
        assert np.all(model.item_vectors_[cold].numpy()[:, d : d + 8] == 0.0)


def test_als_init_needs_its_own_id_block() -> None:
    with pytest.raises(ValueError, match="id_dim > 0"):
        TwoTowerConfig(id_init="als")
    with pytest.raises(ValueError, match="id_init"):
        TwoTowerConfig(id_init="svd", id_dim=8)
