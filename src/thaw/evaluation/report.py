"""Reports: the JSON document, Markdown tables (mean ± std, best in bold, paired tests) and plots."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thaw.evaluation.results import Report
from thaw.evaluation.stats import Comparison, comparisons, comparisons_json

TABLE_METRICS: tuple[str, ...] = (
    "recall@10", "recall@20", "recall@50", "cold_recall@20", "warm_recall@20",
    "ndcg@10", "ndcg@20", "ndcg@50", "precision@20", "hitrate@20", "mrr", "auc",
    "coverage@20", "cold_exposure@20", "gini@20",
)
"""Columns of the Markdown tables (those a sub-ranking lacks are skipped); the last three
describe lists (exposure) and are never bolded: more is not better there."""

_NOT_RANKED = ("coverage@", "cold_exposure@", "gini@", "mean_popularity@")
SIGNIFICANCE_METRICS: tuple[str, ...] = ("recall@20", "ndcg@20")


def baseline_names() -> tuple[str, ...]:
    """The registry's baselines (the reference set for significance tests)."""
    from thaw.models.registry import BASELINES

    return BASELINES


def significance(report: Report, baselines: Iterable[str] | None = None) -> list[Comparison]:
    """Paired tests of every model against its reference on Recall@20 and NDCG@20."""
    base = tuple(baselines) if baselines is not None else baseline_names()
    if len(report.models) < 2:
        return []
    return comparisons(report, base, SIGNIFICANCE_METRICS)


def report_json(report: Report, baselines: Iterable[str] | None = None) -> dict[str, Any]:
    """The JSON document of a report, with its significance tests (NaN written as null)."""
    return finite_json(report.to_dict(significance=comparisons_json(significance(report, baselines))))


def finite_json(value: Any) -> Any:
    """`value` with every non-finite float replaced by None (JSON has no NaN), nested dicts/lists too."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_json(v) for v in value]
    return value


def write_json(report: Report, path: Path, baselines: Iterable[str] | None = None) -> Path:
    """Write `report_json` to `path` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report_json(report, baselines), indent=2, allow_nan=False) + "\n")
    return path


def _cell(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.4f} ± {std:.4f}"


def metrics_table(report: Report, ranking: str, metrics: Sequence[str] = TABLE_METRICS) -> str:
    """A Markdown table: one row per model, mean ± std over folds, the best mean in bold."""
    available = report.metric_names(ranking)
    metrics = [m for m in metrics if m in available]
    summaries = {r.model: report.summary(r.model, ranking) for r in report.models}
    best = {}
    for m in metrics:
        if m.startswith(_NOT_RANKED):
            continue
        means = [summaries[name][m]["mean"] for name in summaries]
        best[m] = max(v for v in means if not math.isnan(v)) if any(not math.isnan(v) for v in means) else None
    lines = ["| model | " + " | ".join(metrics) + " | fit s |", "|---" * (len(metrics) + 2) + "|"]
    for result in report.models:
        cells = []
        for m in metrics:
            s = summaries[result.model][m]
            cell = _cell(s["mean"], s["std"])
            if best.get(m) is not None and np.isclose(s["mean"], best[m], rtol=0, atol=5e-5):
                cell = f"**{cell}**"
            cells.append(cell)
        fit = np.mean([f.fit_seconds for f in result.folds])
        lines.append(f"| {result.model} | " + " | ".join(cells) + f" | {fit:.1f} |")
    return "\n".join(lines)


def significance_table(items: Sequence[Comparison], ranking: str) -> str:
    """A Markdown table of paired tests for one sub-ranking."""
    rows = [c for c in items if c.ranking == ranking]
    if not rows:
        return ""
    lines = [
        "| model | vs | metric | Δ mean | p (t-test, folds) | p (Wilcoxon, users) | folds | user pairs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in rows:
        lines.append(
            f"| {c.model} | {c.reference} | {c.metric} | {c.delta:+.4f} | {_p(c.p_folds)} | "
            f"{_p(c.p_users)} | {c.n_folds} | {c.n_users} |"
        )
    return "\n".join(lines)


def _p(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return "<1e-4" if p < 1e-4 else f"{p:.4f}"


def _users_line(report: Report, ranking: str) -> str:
    first = report.models[0]
    users = [f.rankings[ranking].n_users for f in first.folds]
    pairs = [f.rankings[ranking].n_test_pairs for f in first.folds]
    return f"test users per fold: {users}; test pairs per fold: {pairs}"


def report_markdown(
    report: Report,
    *,
    images: dict[str, str] | None = None,
    baselines: Iterable[str] | None = None,
    heading_level: int = 2,
) -> str:
    """The Markdown section of one report: tables per sub-ranking, tests, plots, split notes."""
    h = "#" * heading_level
    title = f"{report.dataset} · {report.scenario}" if report.dataset else report.scenario
    tests = significance(report, baselines)
    lines = [
        f"{h} {title}",
        "",
        f"{report.folds} of {report.n_folds} folds, seed {report.seed}, "
        f"encoder {report.encoder or 'none'}; judged on the `{report.primary}` ranking. "
        + (f"Every model's scores re-ranked with `{report.rerank}`. " if report.rerank else "")
        + "Mean ± sample std over folds; best mean in bold. Exposure: cold_exposure@20 = share of "
        "top-20 slots showing a cold item, gini@20 = Gini of how often each candidate is "
        "recommended (0 = evenly).",
        "",
    ]
    for ranking in report.rankings:
        lines += [f"{h}# `{ranking}` ranking", "", _users_line(report, ranking), "",
                  metrics_table(report, ranking), ""]
        table = significance_table(tests, ranking)
        if table:
            lines += ["Paired tests against the reference model:", "", table, ""]
    stats = report.split_stats
    if stats:
        notes = {k: [s.get(k, 0) for s in stats] for k in stats[0] if k != "fold"}
        lines += [f"{h}# Splits", "", "| " + " | ".join(notes) + " |", "|---" * len(notes) + "|"]
        lines.append("| " + " | ".join(_range(v) for v in notes.values()) + " |")
        lines.append("")
    for label, src in (images or {}).items():
        lines += [f"![{label}]({src})", ""]
    return "\n".join(lines)


def _range(values: list[int]) -> str:
    return str(values[0]) if min(values) == max(values) else f"{min(values)}–{max(values)}"


def write_report_dir(
    report: Report, directory: Path, baselines: Iterable[str] | None = None
) -> dict[str, Path]:
    """Write `report.json`, `report.md`, `recall_at_k.png` and `bars.png` into `directory`."""
    from thaw.evaluation.plots import metric_bars, recall_curves

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": write_json(report, directory / "report.json", baselines),
        "recall": recall_curves(report, directory / "recall_at_k.png"),
        "bars": metric_bars(report, directory / "bars.png"),
    }
    images = {"Recall@K": "recall_at_k.png", "Recall@20 and NDCG@20": "bars.png"}
    markdown = report_markdown(report, images=images, baselines=baselines, heading_level=1)
    paths["markdown"] = directory / "report.md"
    paths["markdown"].write_text(markdown + "\n")
    return paths
