"""Shared by bench_distributed and bench_privacy: variants of thaw cross-validated side by side.

`run_variants` fits every variant on the same folds of one dataset (the harness), remembering
each fit's training history; `variant_table` renders mean ± std per variant with paired tests
against a reference; `write_with_reading` keeps the hand-written reading of a Markdown file across runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thaw.evaluation.harness import run_scenarios
from thaw.evaluation.results import Report
from thaw.evaluation.stats import compare

log = logging.getLogger("bench_variants")

MARKER = "<!-- reading: hand-written, kept when the script rewrites this file -->"


ROOT = Path(__file__).resolve().parents[1]


def bench_parser(doc: str | None, name: str) -> argparse.ArgumentParser:
    """The options every variant benchmark takes (writes bench/results/NAME.json, docs/benchmarks/NAME.md)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / f"{name}.json")
    parser.add_argument("--markdown", type=Path, default=ROOT / "docs" / "benchmarks" / f"{name}.md")
    return parser


def start_logging() -> None:
    """Progress to stderr; torch on one thread (the harness fits one model at a time)."""
    import torch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    torch.set_num_threads(1)


@dataclass
class Fits:
    """The training histories of every fit of one variant, in fold order."""

    histories: list[Any] = field(default_factory=list)

    def watch(self, factory: Callable[..., Any]) -> Callable[..., Any]:
        """`factory` whose models report their history here after `fit`."""

        def make(seed: int = 0) -> Any:
            model = factory(seed=seed)
            fit = model.fit

            def fit_and_remember(*args: Any, **kwargs: Any) -> Any:
                out = fit(*args, **kwargs)
                if hasattr(model, "history_"):  # baselines have no training history
                    self.histories.append(model.history_)
                return out

            model.fit = fit_and_remember
            return model

        return make


def run_variants(
    snapshot: Any,
    dataset: str,
    scenarios: Sequence[str],
    factories: dict[str, Callable[..., Any]],
    *,
    folds: int,
    encoder: str,
) -> tuple[dict[str, Report], dict[str, Fits], float]:
    """Cross-validate every variant; (reports by scenario, fits by variant, wall seconds)."""
    fits = {name: Fits() for name in factories}
    models = {name: fits[name].watch(factory) for name, factory in factories.items()}

    def progress(p: Any) -> None:
        if p.stage == "fit":
            log.info("%s fold %d %s: fitting (%d/%d done)", p.scenario, p.fold, p.model, p.done, p.total)

    started = time.perf_counter()
    reports = run_scenarios(models, snapshot, list(scenarios), folds=folds, seed=0, callback=progress,
                            dataset=dataset, encoder=encoder)
    return reports, fits, time.perf_counter() - started


def fold_summary(report: Report, fits: dict[str, Fits], metrics: Sequence[str]) -> dict[str, Any]:
    """Per variant: each metric's per-fold values, mean and std (primary ranking), and fit times."""
    out: dict[str, Any] = {}
    for result in report.models:
        values = {m: result.per_fold(report.primary, m) for m in metrics}
        histories = fits[result.model].histories
        out[result.model] = {
            "metrics": {m: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                            "per_fold": [float(x) for x in v]} for m, v in values.items()},
            "fit_seconds_per_fold": [f.fit_seconds for f in result.folds],
            "train_loop_seconds_per_fold": [h.seconds for h in histories],
            "epochs_per_fold": [len(h.epochs) - 1 for h in histories],
            "best_epoch_per_fold": [h.best_epoch for h in histories],
        }
    return out


def variant_table(report: Report, summary: dict[str, Any], metrics: Sequence[str], reference: str) -> list[str]:
    """Markdown rows: mean ± std per metric, Δ and paired p-values against `reference`, times."""
    head = " | ".join(f"{m} (mean ± std)" for m in metrics)
    lines = [f"| variant | {head} | Δ {metrics[0]} | p (folds) | p (users) | fit s/fold | loop s/fold | epochs |",
             "|---" * (len(metrics) + 7) + "|"]
    for name, values in summary.items():
        cells = " | ".join(f"{values['metrics'][m]['mean']:.4f} ± {values['metrics'][m]['std']:.4f}" for m in metrics)
        delta, p_folds, p_users = "", "", ""
        if name != reference:
            test = compare(report, name, reference, report.primary, metrics[0])
            delta = f"{values['metrics'][metrics[0]]['mean'] - summary[reference]['metrics'][metrics[0]]['mean']:+.4f}"
            p_folds, p_users = _p(test.p_folds), _p(test.p_users)
        lines.append(
            f"| {name} | {cells} | {delta} | {p_folds} | {p_users} | {np.mean(values['fit_seconds_per_fold']):.1f} "
            f"| {_mean(values['train_loop_seconds_per_fold'])} | {_mean(values['epochs_per_fold'])} |"
        )
    return lines


def save_results(path: Path, document: dict[str, Any], script: str, argv: Sequence[str] | None) -> str:
    """Write `document` as JSON to `path`; returns the command line that made it (for the Markdown)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    args = " ".join(argv if argv is not None else sys.argv[1:])
    return f"THAW_DATA=../shared/data HF_HUB_OFFLINE=1 .venv/bin/python bench/{script} {args}".strip()


def write_with_reading(path: Path, lines: list[str]) -> None:
    """Write `lines` to `path`, then a Reading section that keeps the hand-written one already there."""
    reading = "(to be written after the run)"
    if path.exists() and MARKER in path.read_text():
        reading = path.read_text().split(MARKER, 1)[1].strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([*lines, "## Reading", "", MARKER, "", reading, ""]))
    log.info("wrote %s", path)


def _mean(values: list[float]) -> str:
    return f"{np.mean(values):.1f}" if values else ""


def _p(p: float) -> str:
    if p != p:  # nan
        return "n/a"
    return "<1e-4" if p < 1e-4 else f"{p:.4f}"
