"""Training batches: history/target splits, user roles, candidates; validation views."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from thaw.models.tower_data import EntityFeatures
from thaw.training.batches import COLD, BatchSampler
from thaw.training.loop import TrainConfig, TrainingData
from thaw.training.validation import validation_views


def _train(seed: int = 0, n_users: int = 30, n_items: int = 50) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < 0.2).astype(np.float32)
    dense[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1.0  # everyone has something
    return sp.csr_matrix(dense)


def test_batch_splits_each_user_into_disjoint_history_and_targets() -> None:
    train = _train()
    config = TrainConfig(batch_users=8, max_history=4, n_random_negatives=5)
    sampler = BatchSampler(train, np.ones(50, bool), config, np.random.default_rng(0))
    seen_users = []
    for batch in sampler.epoch():
        seen_users.extend(batch.users.tolist())
        assert not (batch.positives & batch.excluded).any()
        assert batch.positives.any(axis=1).all()  # every user has a target
        for row, user in enumerate(batch.users):
            liked = set(train[user].indices)
            history = batch.candidates[batch.history_index[row][batch.history_weight[row] > 0]]
            targets = batch.candidates[batch.positives[row]]
            assert set(history) <= liked and set(targets) <= liked
            assert not set(history) & set(targets)
            assert len(history) <= config.max_history
            excluded = set(batch.candidates[batch.excluded[row]])
            assert excluded == (liked & set(batch.candidates)) - set(targets)
    assert sorted(seen_users) == list(range(30))  # one epoch visits every user once


def test_cold_role_drops_history_and_id_and_only_warm_role_keeps_the_id() -> None:
    config = TrainConfig(batch_users=30, user_modes=(0.0, 0.0, 0.0, 1.0))
    batch = BatchSampler(_train(), np.ones(50, bool), config, np.random.default_rng(1)).batch(np.arange(30))
    assert (batch.history_weight == 0).all() and (batch.keep_user_id == 0).all()
    warm = TrainConfig(batch_users=30, user_modes=(1.0, 0.0, 0.0, 0.0))
    batch = BatchSampler(_train(), np.ones(50, bool), warm, np.random.default_rng(1)).batch(np.arange(30))
    assert (batch.keep_user_id == 1).all()
    onboarding = TrainConfig(batch_users=30, user_modes=(0.0, 0.0, 1.0, 0.0), onboarding_max=2)
    batch = BatchSampler(_train(), np.ones(50, bool), onboarding, np.random.default_rng(1)).batch(np.arange(30))
    assert ((batch.history_weight > 0).sum(axis=1) <= 2).all()
    assert COLD == 3


def test_random_negatives_come_from_warm_items_only() -> None:
    warm = np.zeros(50, bool)
    warm[:25] = True
    dense = _train().toarray() * warm[None, :]
    dense[:, 0] = 1.0
    train = sp.csr_matrix(dense)
    config = TrainConfig(batch_users=8, n_random_negatives=20)
    batch = BatchSampler(train, warm, config, np.random.default_rng(0)).batch(np.arange(8))
    assert warm[batch.candidates].all()


def _data(validation: sp.csr_matrix, warm_users: np.ndarray, warm_items: np.ndarray) -> TrainingData:
    train = sp.csr_matrix(np.outer(warm_users, warm_items).astype(np.float32))
    return TrainingData(train, EntityFeatures(), EntityFeatures(), warm_users, warm_items, validation)


def test_validation_views_follow_the_cold_part() -> None:
    warm_users = np.array([1, 1, 0, 0], bool)
    warm_items = np.array([1, 1, 1, 0, 0, 0], bool)
    validation = sp.csr_matrix(np.array([
        [0, 0, 0, 1, 0, 0],  # warm user, cold item
        [0, 0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 0],  # cold user with five items: onboarding reveals three
        [1, 0, 0, 0, 0, 0],
    ], dtype=np.float32))
    views = {v.name: v for v in validation_views(_data(validation, warm_users, warm_items))}
    assert set(views) == {"cold-item", "cold-user", "onboarding-3"}
    assert set(views["cold-item"].candidates) == {3, 4, 5}
    assert views["cold-user"].history.nnz == 0
    onboarding = views["onboarding-3"]
    assert list(onboarding.users) == [2]
    assert onboarding.history.nnz == 3 and onboarding.relevant.nnz == 2
    assert not onboarding.history.multiply(onboarding.relevant).nnz
    warm_only = sp.csr_matrix(np.array([[1, 0, 0, 0, 0, 0]] + [[0] * 6] * 3, dtype=np.float32))
    views = validation_views(_data(warm_only, warm_users, warm_items))
    assert [v.name for v in views] == ["warm"]


def test_ranking_metric_matches_hand_computed_recall_and_ndcg() -> None:
    from thaw.training.validation import ranking_metric

    scores = np.array([[0.9, 0.8, 0.1, 0.5], [0.1, 0.2, 0.3, 0.4]])
    relevant = sp.csr_matrix(np.array([[0, 1, 1, 0], [0, 0, 0, 0]], dtype=np.float32))
    # Row 0 ranks items 0, 1 at k = 2: one of two relevant found; row 1 has nothing relevant.
    assert ranking_metric(scores, relevant, 2, "recall") == 0.5
    ndcg = (1 / np.log2(3)) / (1 + 1 / np.log2(3))
    assert abs(ranking_metric(scores, relevant, 2, "ndcg") - ndcg) < 1e-12


def test_onboarding_role_sees_the_earliest_interactions_when_times_are_known() -> None:
    train = _train(seed=2)
    train.sort_indices()
    rng = np.random.default_rng(0)
    times = rng.permutation(train.nnz).astype(np.int64)  # distinct times
    config = TrainConfig(batch_users=30, user_modes=(0.0, 0.0, 1.0, 0.0), onboarding_max=3)
    batch = BatchSampler(train, np.ones(50, bool), config, np.random.default_rng(1), times).batch(np.arange(30))
    for row, user in enumerate(batch.users):
        lo, hi = train.indptr[user], train.indptr[user + 1]
        if hi - lo < 2:
            continue
        history = batch.candidates[batch.history_index[row][batch.history_weight[row] > 0]]
        earliest = train.indices[lo:hi][np.argsort(times[lo:hi])][: len(history)]
        assert set(history) == set(earliest)
        targets = set(batch.candidates[batch.positives[row]])
        assert targets and not targets & set(history)
