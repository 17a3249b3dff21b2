"""PNG plots of a Report with matplotlib (Agg backend, no display needed)."""

from __future__ import annotations

from pathlib import Path

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
