"""The harness: what models may see (leakage guards), what gets ranked, determinism."""

from __future__ import annotations

import dataclasses
import json
from typing import Self

import numpy as np
import pytest
import scipy.sparse as sp

from thaw.data.dataset import EventWeights
from thaw.evaluation.harness import evaluate_fold, fit_data, run, run_scenarios, scoring_history
from thaw.evaluation.report import report_json
from thaw.evaluation.splits import make_split
from thaw.models.base import FitData
from thaw.models.popularity import PopularityRecommender
from thaw.models.random_baseline import RandomRecommender


def _pairs_of(matrix: sp.csr_matrix, n_items: int) -> set[int]:
    coo = matrix.tocoo()
    return set((coo.row.astype(np.int64) * n_items + coo.col).tolist())


class Recording:
    """Remembers everything it was given; scores like `inner`."""

    name = "recording"

    def __init__(self, inner=None) -> None:
        self.inner = inner or RandomRecommender(seed=1)
        self.histories: dict[int, set[int]] = {}

    def fit(self, data: FitData) -> Self:
        self.data = data
        self.inner.fit(data)
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        for row, u in enumerate(users):
            self.histories[int(u)] = set(history.indices[history.indptr[row] : history.indptr[row + 1]].tolist())
        return self.inner.score(users, history)


@pytest.mark.parametrize("scenario", ["warm", "cold-item", "cold-user", "cold-both", "onboarding-3"])
def test_models_never_see_test_pairs_or_cold_interactions(snapshot, scenario: str) -> None:
    split = make_split(snapshot, scenario, fold=1)
    data = fit_data(snapshot, split)
    n = snapshot.n_items
    test = set(split.test.keys(n).tolist())
    revealed = set(split.revealed.keys(n).tolist())
    seen = _pairs_of(data.train, n) | _pairs_of(data.validation, n)
    assert not seen & test, "a test pair reached fit()"
    assert not seen & revealed, "an onboarding reveal was trained on"
    assert not data.train[:, split.cold_items].nnz and not data.train[split.cold_users].nnz
    assert _pairs_of(data.validation, n) == set(split.val.keys(n).tolist())
    ev = data.train_events
    assert set((ev.user.astype(np.int64) * n + ev.item).tolist()) <= set(split.train.keys(n).tolist())
    assert not {f.name for f in dataclasses.fields(FitData)} & {"item_derived", "derived", "test"}


def test_popularity_counts_training_pairs_only(snapshot) -> None:
    split = make_split(snapshot, "cold-item", fold=0)
    model = PopularityRecommender().fit(fit_data(snapshot, split))
    assert np.array_equal(model.counts_, np.bincount(split.train.item, minlength=snapshot.n_items))
    assert (model.counts_[split.cold_items] == 0).all()


def test_weighted_training_matrix(snapshot) -> None:
    split = make_split(snapshot, "warm", fold=0)
    weights = EventWeights(purchase=0.7)
    data = fit_data(snapshot, split, weights=weights)
    assert np.allclose(data.train.data, 0.7)  # every synthetic event is a purchase
    assert data.train.nnz == len(split.train)


def test_scoring_history_is_training_rows_plus_reveals(snapshot) -> None:
    split = make_split(snapshot, "onboarding-3", fold=0)
    data = fit_data(snapshot, split)
    model = Recording()
    model.fit(data)
    result = evaluate_fold(model, snapshot, split, data=data)
    assert result.rankings["cold"].n_users > 0
    for u in np.unique(split.revealed.user):
        shown = set(split.revealed.item[split.revealed.user == u].tolist())
        assert model.histories[int(u)] == shown  # a cold user's history is exactly the reveal
    history = scoring_history(snapshot, split, data)
    for u in np.unique(split.test.user[~split.cold_users[split.test.user]])[:10]:
        row = set(history[u].indices.tolist())
        assert model.histories[int(u)] == row == set(split.train.item[split.train.user == u].tolist())


class HistoryLover(RandomRecommender):
    """Random, except that history items get huge scores: must not matter."""

    name = "history-lover"

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return super().score(users, history) + 1000.0 * history.toarray()


def test_history_items_are_never_ranked(snapshot) -> None:
    split = make_split(snapshot, "onboarding-1", fold=2)
    data = fit_data(snapshot, split)
    plain = evaluate_fold(RandomRecommender(seed=3).fit(data), snapshot, split, data=data)
    loving = evaluate_fold(HistoryLover(seed=3).fit(data), snapshot, split, data=data)
    for name in plain.rankings:
        for metric, values in plain.rankings[name].per_user.items():
            assert np.array_equal(values, loving.rankings[name].per_user[metric]), (name, metric)


class Oracle:
    """Knows the test pairs: the harness must give it perfect scores."""

    name = "oracle"

    def __init__(self, split) -> None:
        self.split = split

    def fit(self, data: FitData) -> Self:
        self.n_items = data.n_items
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        test = self.split.test.matrix(self.split.n_users, self.n_items)
        return test[users].toarray()


def test_an_oracle_scores_perfectly(snapshot) -> None:
    split = make_split(snapshot, "cold-item", fold=0)
    result = evaluate_fold(Oracle(split).fit(fit_data(snapshot, split)), snapshot, split)
    for ranking in result.rankings.values():
        assert ranking.aggregate["mrr"] == 1.0
        assert ranking.aggregate["auc"] == 1.0
        assert ranking.aggregate["ndcg@10"] == pytest.approx(1.0)
        assert ranking.aggregate["recall@50"] == 1.0  # fewer than 50 test items per user here


def test_wrong_score_shape_raises(snapshot) -> None:
    class Bad(RandomRecommender):
        def score(self, users, history):
            return np.zeros((len(users), 3))

    split = make_split(snapshot, "warm", fold=0)
    with pytest.raises(ValueError, match="shape"):
        evaluate_fold(Bad().fit(fit_data(snapshot, split)), snapshot, split)


def test_same_seed_same_numbers(snapshot) -> None:
    models = ["random", "popularity", "content-knn", "als", "seed"]
    options = {"seed": {"max_epochs": 2}}
    a = report_json(run(models, snapshot, "cold-item", folds=2, seed=3, options=options))
    b = report_json(run(models, snapshot, "cold-item", folds=2, seed=3, options=options))
    c = report_json(run(models, snapshot, "cold-item", folds=2, seed=4, options=options))
    for doc in (a, b, c):
        doc.pop("elapsed_seconds")
        for r in doc["results"]:
            for key in ("fit_seconds", "fit_seconds_per_fold", "score_seconds"):
                r.pop(key)
    assert json.dumps(a) == json.dumps(b)
    assert json.dumps(a["results"]) != json.dumps(c["results"])


def test_derived_attributes_are_not_content(snapshot) -> None:
    """Tags exist because users interacted: scrambling them must change nothing."""
    rng = np.random.default_rng(0)
    scrambled = dataclasses.replace(
        snapshot, item_derived=[{"tags": [f"tag-{rng.integers(1000)}"]} for _ in snapshot.item_ids]
    )
    a = run(["content-knn"], snapshot, "cold-item", folds=1)
    b = run(["content-knn"], scrambled, "cold-item", folds=1)
    assert a.summary("content-knn") == b.summary("content-knn")


def test_onboarding_and_cold_user_share_one_fit(snapshot) -> None:
    fits = []

    def factory(seed: int = 0):
        model = RandomRecommender(seed=seed)
        original = model.fit

        def fit(data):
            fits.append(1)
            return original(data)

        model.fit = fit
        return model

    reports = run_scenarios({"random": factory}, snapshot, ["cold-user", "onboarding-1", "onboarding-3"], folds=2)
    assert len(fits) == 2  # one per fold, reused by the three scenarios
    assert set(reports) == {"cold-user", "onboarding-1", "onboarding-3"}
    assert all(f.shared_fit for f in reports["onboarding-3"].model("random").folds)


def test_progress_callback(snapshot) -> None:
    seen = []
    run(["random", "popularity"], snapshot, "warm", folds=2, callback=seen.append)
    done = [p for p in seen if p.stage == "done"]
    assert [p.done for p in done] == [1, 2, 3, 4] and done[-1].total == 4
    assert {p.model for p in seen} == {"random", "popularity"}


def test_run_rejects_bad_arguments(snapshot) -> None:
    with pytest.raises(ValueError, match="folds"):
        run(["random"], snapshot, "warm", folds=6)
    with pytest.raises(ValueError, match="unknown model"):
        run(["nope"], snapshot, "warm", folds=1)
    with pytest.raises(ValueError, match="distinct"):
        run(["random", "random"], snapshot, "warm", folds=1)
