"""Plain result records of the harness: per user, per fold, per model, per scenario."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class RankingResult:
    """One sub-ranking of one fold: per-user metric arrays (kept for paired tests) and aggregates."""

    users: np.ndarray  # (n_test_users,) user indices, ascending
    per_user: dict[str, np.ndarray]  # metric -> (n_test_users,)
    aggregate: dict[str, float]  # per-user means, plus list metrics (coverage@k, cold_exposure@k, ...)
    n_test_pairs: int

    @property
    def n_users(self) -> int:
        return len(self.users)


@dataclass
class FoldResult:
    """A fitted model evaluated on one split."""

    model: str
    fold: int
    rankings: dict[str, RankingResult]
    fit_seconds: float = 0.0
    score_seconds: float = 0.0
    shared_fit: bool = False  # the fit was reused from another scenario with the same training data


@dataclass
class ModelResult:
    """All folds of one model."""

    model: str
    folds: list[FoldResult] = field(default_factory=list)

    def per_fold(self, ranking: str, metric: str) -> np.ndarray:
        """(n_folds,) the metric's fold values."""
        return np.array([f.rankings[ranking].aggregate[metric] for f in self.folds], np.float64)


def mean_std(values: np.ndarray) -> dict[str, Any]:
    """`{"mean", "std", "per_fold"}`; std is the sample std (ddof=1), 0 for a single fold."""
    values = np.asarray(values, np.float64)
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(values.mean()), "std": std, "per_fold": [float(v) for v in values]}


@dataclass
class Report:
    """One scenario over `folds` folds for several models."""

    scenario: str
    folds: int
    n_folds: int
    seed: int
    ks: tuple[int, ...]
    primary: str  # the sub-ranking the scenario is judged on
    rankings: list[str]
    models: list[ModelResult]
    split_stats: list[dict[str, int]] = field(default_factory=list)
    dataset: str = ""
    encoder: str = ""
    elapsed_seconds: float = 0.0
    rerank: str = ""  # the exposure re-ranking applied to every model ("" = none)

    def model(self, name: str) -> ModelResult:
        """The results of model `name`."""
        for result in self.models:
            if result.model == name:
                return result
        raise KeyError(f"no model {name!r} in this report")

    def metric_names(self, ranking: str | None = None) -> list[str]:
        """The aggregate metric names of a sub-ranking, in report order."""
        first = self.models[0].folds[0].rankings[ranking or self.primary]
        return list(first.aggregate)

    def summary(self, model: str, ranking: str | None = None) -> dict[str, dict[str, Any]]:
        """metric -> mean, std and per-fold values."""
        ranking = ranking or self.primary
        result = self.model(model)
        return {m: mean_std(result.per_fold(ranking, m)) for m in self.metric_names(ranking)}

    def to_dict(self, significance: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON document: scenario, folds and per-model metrics (primary ranking first)."""
        results = []
        for result in self.models:
            rankings = {}
            for name in self.rankings:
                rankings[name] = {
                    "metrics": self.summary(result.model, name),
                    "n_test_users": [f.rankings[name].n_users for f in result.folds],
                    "n_test_pairs": [f.rankings[name].n_test_pairs for f in result.folds],
                }
            fit = [f.fit_seconds for f in result.folds]
            results.append(
                {
                    "model": result.model,
                    "metrics": self.summary(result.model, self.primary),
                    "fit_seconds": float(np.mean(fit)),
                    "fit_seconds_per_fold": fit,
                    "score_seconds": float(np.mean([f.score_seconds for f in result.folds])),
                    "shared_fit": any(f.shared_fit for f in result.folds),
                    "rankings": rankings,
                }
            )
        doc: dict[str, Any] = {
            "scenario": self.scenario,
            "folds": self.folds,
            "results": results,
            "dataset": self.dataset,
            "encoder": self.encoder,
            "seed": self.seed,
            "n_folds": self.n_folds,
            "ks": list(self.ks),
            "primary_ranking": self.primary,
            "rankings": list(self.rankings),
            "splits": self.split_stats,
            "elapsed_seconds": self.elapsed_seconds,
            "rerank": self.rerank or None,
        }
        if significance is not None:
            doc["significance"] = significance
        return doc
