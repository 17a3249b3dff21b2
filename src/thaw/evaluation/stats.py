"""Paired significance tests between models evaluated on the same splits.

Two tests, both two-sided and paired, neither corrected for multiple comparisons:
- a paired t-test on the per-fold means (n = number of folds; needs >= 2 folds);
- a Wilcoxon signed-rank test on per-user values pooled over folds (pairs whose difference is
  zero are dropped, scipy's `zero_method="wilcox"`).
Every model is compared with a reference: the best baseline by the mean of the metric (for the
best baseline itself, the runner-up), or, when the report has non-baseline models, each of
those with the best baseline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from thaw.evaluation.results import ModelResult, Report


@dataclass(frozen=True)
class Comparison:
    """`model` against `reference` on one metric of one sub-ranking."""

    model: str
    reference: str
    ranking: str
    metric: str
    delta: float  # mean(model) - mean(reference) over folds
    p_folds: float  # paired t-test on fold means (nan with < 2 folds or identical differences)
    p_users: float  # Wilcoxon signed-rank on per-user values pooled over folds
    n_folds: int
    n_users: int


def paired_t(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p of a paired t-test; nan when undefined (n < 2 or zero variance)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    diff = a - b
    if len(diff) < 2 or np.allclose(diff, diff[0]):
        return float("nan")
    return float(stats.ttest_rel(a, b).pvalue)


def wilcoxon(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p of the Wilcoxon signed-rank test; 1.0 when every difference is zero."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    if len(a) == 0 or np.all(a == b):
        return 1.0
    return float(stats.wilcoxon(a, b, zero_method="wilcox").pvalue)


def pooled_per_user(result: ModelResult, other: ModelResult, ranking: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-user values of two models over all folds, aligned user by user within each fold."""
    xs, ys = [], []
    for fa, fb in zip(result.folds, other.folds, strict=True):
        ra, rb = fa.rankings[ranking], fb.rankings[ranking]
        if not np.array_equal(ra.users, rb.users):
            raise ValueError(f"fold {fa.fold}: the models were scored on different test users")
        xs.append(ra.per_user[metric])
        ys.append(rb.per_user[metric])
    return np.concatenate(xs), np.concatenate(ys)


def compare(report: Report, model: str, reference: str, ranking: str, metric: str) -> Comparison:
    """Paired tests of `model` against `reference` (fold means and pooled per-user values)."""
    a, b = report.model(model), report.model(reference)
    fa, fb = a.per_fold(ranking, metric), b.per_fold(ranking, metric)
    delta = float(fa.mean() - fb.mean())
    per_user = metric in a.folds[0].rankings[ranking].per_user
    ua, ub = pooled_per_user(a, b, ranking, metric) if per_user else (np.zeros(0), np.zeros(0))
    return Comparison(
        model, reference, ranking, metric, delta, paired_t(fa, fb),
        wilcoxon(ua, ub) if per_user else float("nan"), len(fa), len(ua),
    )


def best_model(report: Report, ranking: str, metric: str, among: Iterable[str]) -> str | None:
    """The model of `among` with the highest fold-mean `metric` (first on ties; None if empty)."""
    best, value = None, -math.inf
    for name in among:
        mean = float(report.model(name).per_fold(ranking, metric).mean())
        if mean > value:
            best, value = name, mean
    return best


def comparisons(
    report: Report,
    baselines: Iterable[str],
    metrics: Iterable[str] = ("recall@20", "ndcg@20"),
    rankings: Iterable[str] | None = None,
) -> list[Comparison]:
    """Every model against its reference (see module docstring), per sub-ranking and metric."""
    names = [m.model for m in report.models]
    base = [n for n in names if n in set(baselines)]
    others = [n for n in names if n not in base]
    out = []
    for ranking in rankings or report.rankings:
        for metric in metrics:
            best = best_model(report, ranking, metric, base)
            if best is None:
                continue
            if others:
                pairs = [(n, best) for n in others]
            else:
                rest = [n for n in base if n != best]
                runner_up = best_model(report, ranking, metric, rest)
                pairs = [(n, best) for n in rest] + ([(best, runner_up)] if runner_up else [])
            out.extend(compare(report, m, r, ranking, metric) for m, r in pairs)
    return out


def comparisons_json(items: list[Comparison]) -> list[dict[str, Any]]:
    """Comparisons as JSON-able dicts (nan -> None)."""
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(c).items()}
        for c in items
    ]
