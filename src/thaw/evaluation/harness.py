"""The evaluation harness: the only code that fits and scores models for a quality claim.

`fit_data` builds what a model may learn from a split (training pairs, validation for early
stopping, content of every entity; nothing of a cold entity's interactions). `evaluate_fold`
scores a fitted model on the test users of every sub-ranking. `run` / `run_scenarios` do the
cross-validation and return `Report`s; progress goes to a callback, never to the screen.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from thaw.data.dataset import EventWeights, Snapshot, interaction_matrix
from thaw.evaluation.metrics import (
    DEFAULT_KS,
    coverage,
    exposure_share,
    mean_popularity,
    metrics_from_ranks,
    recommendation_gini,
)
from thaw.evaluation.ranking import (
    Ranking,
    RankedUsers,
    primary_ranking,
    rank_users,
    rankings_for,
    tiebreak_keys,
)
from thaw.evaluation.results import FoldResult, ModelResult, RankingResult, Report
from thaw.evaluation.splits import Pairs, Split, make_split
from thaw.models.base import FitData, Recommender
from thaw.models.rerank import ExposureReranker, RerankSpec, as_spec

log = logging.getLogger(__name__)

Factory = Callable[..., Recommender]
"""Builds a fresh model: `factory(seed=...)`."""


@dataclass(frozen=True)
class Progress:
    """One step of a run: `done` of `total` model-fold evaluations finished."""

    scenario: str
    fold: int
    model: str
    stage: str  # "fit" | "score" | "done"
    done: int
    total: int


ProgressCallback = Callable[[Progress], None]


def pair_values(snapshot: Snapshot, pairs: Pairs, weights: EventWeights | None) -> np.ndarray:
    """(len(pairs),) float32 strength of each pair: 1, or its strongest event's weight.

    Pairs without any event in the snapshot (possible in a split read from files) get 1.
    """
    if weights is None or len(pairs) == 0:
        return np.ones(len(pairs), np.float32)
    keys = pairs.keys(snapshot.n_items)
    events = snapshot.events
    event_keys = events.user.astype(np.int64) * snapshot.n_items + events.item
    mine = np.isin(event_keys, keys)
    strongest = interaction_matrix(events.subset(mine), snapshot.n_users, snapshot.n_items, weights)
    values = np.asarray(strongest[pairs.user, pairs.item]).ravel().astype(np.float32)
    has_event = np.isin(keys, event_keys[mine])
    return np.where(has_event, values, np.float32(1.0))


def _pairs_matrix(snapshot: Snapshot, pairs: Pairs, weights: EventWeights | None) -> sp.csr_matrix:
    m = sp.csr_matrix(
        (pair_values(snapshot, pairs, weights), (pairs.user, pairs.item)),
        shape=(snapshot.n_users, snapshot.n_items),
        dtype=np.float32,
    )
    m.sum_duplicates()
    return m


def fit_data(
    snapshot: Snapshot, split: Split, *, weights: EventWeights | None = None, seed: int = 0
) -> FitData:
    """What a model may learn from `split`: training pairs, validation pairs, all content.

    `train` is binary, or each pair's strongest event weight with `weights`. `validation` holds
    the val pairs (warm val plus the cold validation entities; the cold part is the columns /
    rows outside `warm_items` / `warm_users`). Test pairs and onboarding reveals are absent.
    """
    if (snapshot.n_users, snapshot.n_items) != (split.n_users, split.n_items):
        raise ValueError("the split was made for another snapshot (user/item counts differ)")
    return FitData(
        train=_pairs_matrix(snapshot, split.train, weights),
        items=snapshot.items,
        users=snapshot.users,
        warm_users=split.warm_users,
        warm_items=split.warm_items,
        train_events=snapshot.events.of_pairs(split.train.user, split.train.item, snapshot.n_items),
        validation=split.val.matrix(snapshot.n_users, snapshot.n_items),
        validation_items=None,
        seed=seed,
    )


def scoring_history(
    snapshot: Snapshot, split: Split, data: FitData, weights: EventWeights | None = None
) -> sp.csr_matrix:
    """(n_users, n_items) what each user has at scoring time: training rows plus reveals."""
    history = data.train.tocsr(copy=True)
    if len(split.revealed):
        history = (history + _pairs_matrix(snapshot, split.revealed, weights)).tocsr()
    history.sort_indices()
    return history


def evaluate_fold(
    recommender: Recommender,
    snapshot: Snapshot,
    split: Split,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    data: FitData | None = None,
    weights: EventWeights | None = None,
    batch_size: int = 256,
    rankings: Sequence[str] | None = None,
) -> FoldResult:
    """Score a fitted `recommender` on every sub-ranking of `split` (full ranking).

    `rankings` keeps only the named sub-rankings (default: all of `rankings_for(split)`).
    """
    ks = tuple(sorted(set(int(k) for k in ks)))
    data = data if data is not None else fit_data(snapshot, split, weights=weights)
    history = scoring_history(snapshot, split, data, weights)
    chosen = _chosen_rankings(split, rankings)
    relevant = {name: r.test.matrix(split.n_users, split.n_items) for name, r in chosen.items()}
    users = np.unique(np.concatenate([r.test.user for r in chosen.values()])).astype(np.int64)
    parts: dict[str, list[RankedUsers]] = {name: [] for name in chosen}
    started = time.perf_counter()
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        batch_history = history[batch]
        scores = np.asarray(recommender.score(batch, batch_history))
        tiebreak = tiebreak_keys(batch, split.n_items, split.seed, split.fold)
        if scores.shape != (len(batch), split.n_items):
            raise ValueError(
                f"{recommender.name}.score returned shape {scores.shape}, "
                f"expected {(len(batch), split.n_items)}"
            )
        for name, ranking in chosen.items():
            rel = relevant[name][batch]
            rows = np.flatnonzero(np.diff(rel.indptr) > 0)
            if len(rows) == 0:
                continue
            parts[name].append(
                rank_users(
                    scores[rows], batch[rows], batch_history[rows], rel[rows],
                    ranking.candidates, tiebreak[rows], max(ks),
                )
            )
    score_seconds = time.perf_counter() - started
    popularity = training_popularity(data.train)
    results = {
        name: _ranking_result(parts[name], chosen[name], ks, popularity) for name in chosen
    }
    return FoldResult(recommender.name, split.fold, results, score_seconds=score_seconds)


def _chosen_rankings(split: Split, names: Sequence[str] | None) -> dict[str, Ranking]:
    every = rankings_for(split)
    if names is None:
        return every
    unknown = [n for n in names if n not in every]
    if unknown or not names:
        raise ValueError(f"rankings must be a non-empty subset of {list(every)}, got {list(names)}")
    return {n: r for n, r in every.items() if n in names}


def training_popularity(train: sp.csr_matrix) -> np.ndarray:
    """(n_items,) share of warm users (>= 1 training pair) who interacted with each item in training."""
    positive = (train > 0).tocsr()
    n_warm_users = int((np.diff(positive.indptr) > 0).sum())
    counts = np.asarray(positive.sum(axis=0), np.float64).ravel()
    return counts / max(n_warm_users, 1)


def _ranking_result(
    parts: list[RankedUsers], ranking: Ranking, ks: tuple[int, ...], popularity: np.ndarray
) -> RankingResult:
    users = np.concatenate([p.users for p in parts]) if parts else np.zeros(0, np.int64)
    ranks = [r for p in parts for r in p.ranks]
    n_cand = np.concatenate([p.n_candidates for p in parts]) if parts else np.zeros(0, np.int64)
    top = np.concatenate([p.top for p in parts]) if parts else np.zeros((0, max(ks)), np.int64)
    per_user = metrics_from_ranks(ranks, n_cand, ks)
    aggregate = {m: float(v.mean()) if len(v) else float("nan") for m, v in per_user.items()}
    candidates, cold = ranking.candidates, ranking.cold_items
    n_candidates = max(int(candidates.sum()), 1)
    for k in ks:
        lists = [row[:k][row[:k] >= 0] for row in top]
        aggregate[f"coverage@{k}"] = coverage(lists, n_candidates)
        aggregate[f"cold_exposure@{k}"] = exposure_share(lists, cold)
        aggregate[f"gini@{k}"] = recommendation_gini(lists, candidates) if candidates.any() else float("nan")
        aggregate[f"mean_popularity@{k}"] = mean_popularity(lists, popularity)
    if ranking.split_by_cold:
        items = [i for p in parts for i in p.items]
        for group, label in ((True, "cold"), (False, "warm")):
            for k in ks:
                aggregate[f"{label}_recall@{k}"] = _group_recall(ranks, items, cold, group, k)
    return RankingResult(users, per_user, aggregate, len(ranking.test))


def _group_recall(
    ranks: list[np.ndarray], items: list[np.ndarray], cold: np.ndarray, group: bool, k: int
) -> float:
    """Mean over users with relevant items in the group (cold or warm) of their recall@k there."""
    values = []
    for r, i in zip(ranks, items):
        mine = cold[i] == group
        if mine.any():
            values.append(float((r[mine] <= k).sum()) / int(mine.sum()))
    return float(np.mean(values)) if values else float("nan")


def _make_model(model: str | Factory, seed: int, options: Mapping[str, Any]) -> Recommender:
    if isinstance(model, str):
        from thaw.models.registry import create

        return create(model, seed=seed, **options)
    return model(seed=seed, **options)


def run(
    models: Sequence[str] | Mapping[str, Factory],
    snapshot: Snapshot,
    scenario: str,
    *,
    folds: int = 5,
    seed: int = 0,
    **kwargs: Any,
) -> Report:
    """Cross-validate `models` on one scenario (folds 0..folds-1 of `n_folds`)."""
    return run_scenarios(models, snapshot, [scenario], folds=folds, seed=seed, **kwargs)[scenario]


def run_scenarios(
    models: Sequence[str] | Mapping[str, Factory],
    snapshot: Snapshot,
    scenarios: Sequence[str],
    *,
    folds: int = 5,
    n_folds: int = 5,
    seed: int = 0,
    ks: Sequence[int] = DEFAULT_KS,
    weights: EventWeights | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    splits: Sequence[Split] | None = None,
    callback: ProgressCallback | None = None,
    dataset: str = "",
    encoder: str = "",
    rerank: RerankSpec | str | None = None,
) -> dict[str, Report]:
    """Cross-validate `models` on several scenarios; returns one Report per scenario.

    Scenarios whose splits train on the same pairs (cold-user and onboarding-k of one fold)
    share one fit per model. `splits` replaces the generated ones (e.g. read from a ColdRec
    directory); then `folds` is their number and `scenarios` must name their scenario.
    `options[model]` are keyword arguments for that model's factory. `rerank` (a RerankSpec
    or its text, e.g. "cold-share=0.2") re-ranks every fitted model's scores for cold-item
    exposure (`thaw.models.rerank`); fit times stay those of the models themselves.
    """
    if splits is None and not 1 <= folds <= n_folds:
        raise ValueError(f"folds must be in [1, {n_folds}], got {folds}")
    if splits is None and not scenarios:
        raise ValueError("no scenario given")
    names = list(models) if not isinstance(models, Mapping) else list(models.keys())
    if not names or len(set(names)) != len(names):
        raise ValueError(f"models must be distinct and non-empty, got {names}")
    options = options or {}
    spec = as_spec(rerank)
    ks = tuple(sorted(set(int(k) for k in ks)))
    if splits is not None:
        if not splits or len({s.scenario for s in splits}) != 1:
            raise ValueError("splits must be non-empty and all of one scenario")
        folds, n_folds = len(splits), max(len(splits), splits[0].n_folds)
        scenarios = [splits[0].scenario]
    started = time.perf_counter()
    results = {s: {m: ModelResult(m) for m in names} for s in scenarios}
    stats: dict[str, list[dict[str, int]]] = {s: [] for s in scenarios}
    total = folds * len(scenarios) * len(names)
    done = 0
    for fold in range(folds):
        fold_splits = (
            [splits[fold]] if splits is not None
            else [make_split(snapshot, s, fold=fold, n_folds=n_folds, seed=seed) for s in scenarios]
        )
        groups: dict[str, list[Split]] = {}
        for split in fold_splits:
            groups.setdefault(split.training_key(), []).append(split)
            stats[split.scenario].append(_split_counts(split))
        for group in groups.values():
            data = fit_data(snapshot, group[0], weights=weights, seed=seed)
            for name in names:
                factory = name if not isinstance(models, Mapping) else models[name]
                model = _make_model(factory, seed, options.get(name, {}))
                if callback:
                    callback(Progress(group[0].scenario, fold, name, "fit", done, total))
                t0 = time.perf_counter()
                model.fit(data)
                fit_seconds = time.perf_counter() - t0
                scorer = model if spec is None else ExposureReranker.from_spec(
                    model, spec, prefit=True, seed=seed).fit(data)
                for i, split in enumerate(group):
                    if callback:
                        callback(Progress(split.scenario, fold, name, "score", done, total))
                    result = evaluate_fold(scorer, snapshot, split, ks, data=data, weights=weights)
                    result.model, result.fit_seconds, result.shared_fit = name, fit_seconds, len(group) > 1
                    results[split.scenario][name].folds.append(result)
                    done += 1
                    log.info("%s fold %d %s: %.1fs fit", split.scenario, fold, name, fit_seconds)
                    if callback:
                        callback(Progress(split.scenario, fold, name, "done", done, total))
    elapsed = time.perf_counter() - started
    reports = {}
    for scenario in scenarios:
        first = results[scenario][names[0]].folds[0]
        ordered = list(first.rankings)
        reports[scenario] = Report(
            scenario=scenario, folds=folds, n_folds=n_folds, seed=seed, ks=ks,
            primary=primary_ranking(scenario), rankings=ordered,
            models=[results[scenario][m] for m in names], split_stats=stats[scenario],
            dataset=dataset, encoder=encoder, elapsed_seconds=elapsed,
            rerank=spec.label if spec is not None else "",
        )
    return reports


def _split_counts(split: Split) -> dict[str, int]:
    counts = {
        "fold": split.fold,
        "train_pairs": len(split.train),
        "val_pairs": len(split.val),
        "test_pairs": len(split.test),
        "revealed_pairs": len(split.revealed),
        "cold_users": int(split.cold_users.sum()),
        "cold_items": int(split.cold_items.sum()),
        "warm_users": int(split.warm_users.sum()),
        "warm_items": int(split.warm_items.sum()),
    }
    counts.update(split.stats)
    return counts
