"""PNG plots of a Report with matplotlib (Agg backend, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thaw.evaluation.results import Report


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def recall_curves(report: Report, path: Path, metric: str = "recall") -> Path:
    """Recall@K (or `metric`@K) against K, one line per model with ±std bars, one panel per sub-ranking."""
    plt = _pyplot()
    rankings = report.rankings
    fig, axes = plt.subplots(1, len(rankings), figsize=(4.2 * len(rankings), 3.6), squeeze=False)
    ks = list(report.ks)
    for ax, ranking in zip(axes[0], rankings):
        for result in report.models:
            means = [result.per_fold(ranking, f"{metric}@{k}").mean() for k in ks]
            stds = [_std(result.per_fold(ranking, f"{metric}@{k}")) for k in ks]
            ax.errorbar(ks, means, yerr=stds, marker="o", capsize=3, label=result.model)
        ax.set_title(f"{report.dataset} {report.scenario}: {ranking}".strip())
        ax.set_xlabel("K")
        ax.set_ylabel(f"{metric}@K")
        ax.set_xticks(ks)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def metric_bars(report: Report, path: Path, metrics: tuple[str, ...] = ("recall@20", "ndcg@20")) -> Path:
    """Per-model bars (mean ± std over folds) for each metric, one panel per sub-ranking."""
    plt = _pyplot()
    rankings = report.rankings
    fig, axes = plt.subplots(1, len(rankings), figsize=(4.2 * len(rankings), 3.6), squeeze=False)
    names = [r.model for r in report.models]
    x = np.arange(len(names))
    width = 0.8 / len(metrics)
    for ax, ranking in zip(axes[0], rankings):
        for j, metric in enumerate(metrics):
            means = [r.per_fold(ranking, metric).mean() for r in report.models]
            stds = [_std(r.per_fold(ranking, metric)) for r in report.models]
            ax.bar(x + (j - (len(metrics) - 1) / 2) * width, means, width, yerr=stds, capsize=3, label=metric)
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{report.dataset} {report.scenario}: {ranking}".strip())
        ax.grid(axis="y", alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _std(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


TRADEOFF_PANELS: tuple[tuple[str, str], ...] = (
    ("cold_exposure@20", "recall@20"),
    ("cold_exposure@20", "warm_recall@20"),
    ("gini@20", "recall@20"),
)
"""(x, y) metric pairs of the exposure trade-off plot, one panel each per dataset."""


def exposure_tradeoff(
    points: Sequence[Mapping[str, Any]],
    path: Path,
    panels: Sequence[tuple[str, str]] = TRADEOFF_PANELS,
    marked: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """Accuracy against exposure as a re-ranking strength grows: one row of panels per dataset.

    Each point is a mapping with `dataset`, `model`, `method`, `strength` and the metric means;
    points of one (model, method) are joined in order of strength, the strength-0 point drawn
    as a square. `marked` points (e.g. chosen on validation) get a black ring.
    """
    plt = _pyplot()
    datasets = list(dict.fromkeys(p["dataset"] for p in points))
    fig, axes = plt.subplots(len(datasets), len(panels), figsize=(4.3 * len(panels), 3.7 * len(datasets)),
                             squeeze=False)
    models = list(dict.fromkeys(p["model"] for p in points))
    methods = list(dict.fromkeys(p["method"] for p in points))
    colours = {m: f"C{i}" for i, m in enumerate(models)}
    styles = {m: s for m, s in zip(methods, ("-", "--", ":", "-."))}
    for row, dataset in enumerate(datasets):
        mine = [p for p in points if p["dataset"] == dataset]
        for col, (x, y) in enumerate(panels):
            ax = axes[row][col]
            for model in models:
                for method in methods:
                    line = sorted((p for p in mine if p["model"] == model and p["method"] == method),
                                  key=lambda p: p["strength"])
                    if not line:
                        continue
                    ax.plot([p[x] for p in line], [p[y] for p in line], styles[method], marker="o",
                            markersize=3.5, color=colours[model], label=f"{model} {method}")
                    base = [p for p in line if p["strength"] == 0]
                    if base:
                        ax.plot(base[0][x], base[0][y], "s", color=colours[model], markersize=7)
            for p in marked:
                if p["dataset"] == dataset:
                    ax.plot(p[x], p[y], "o", markersize=11, markerfacecolor="none", markeredgecolor="black")
            ax.set_xlabel(x)
            ax.set_ylabel(y)
            ax.set_title(f"{dataset}: {y} vs {x}", fontsize=9)
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
