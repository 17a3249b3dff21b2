"""Benchmark thaw's model against the baselines with the evaluation harness (5-fold CV).

Runs, each on the same folds for every model:
  citeulike-a cold-item  thaw, content-knn, als, popularity (+ ablations with --ablations)
  citeulike-a warm       thaw, als, content-knn, popularity
  ml-100k cold-user      thaw, popularity, content-knn (one fit shared with the onboarding scenarios)
  ml-100k onboarding-3   same fits (each new user reveals their first 3 interactions by time)
  ml-100k onboarding-3-random  same fits (3 interactions drawn at random, the common few-shot protocol)
Writes bench/results/model-<dataset>-<scenario>.json and docs/benchmarks/model.md.

    HF_HUB_OFFLINE=1 THAW_DATA=../shared/data .venv/bin/python bench/bench_model.py --ablations

Text vectors come from the store's embedding cache (var/bench-<dataset>.sqlite), so only the first
run encodes. Nothing here is tuned on test folds: thaw early-stops on each fold's validation pairs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import pickle
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench_quality import OPTIONS as BASELINE_OPTIONS  # the baselines' validated settings
from thaw.config import data_dir_from_env
from thaw.data.dataset import build_snapshot
from thaw.data.datasets import ingest_dataset
from thaw.data.store import Store
from thaw.evaluation.content import encode_snapshot
from thaw.evaluation.harness import run_scenarios
from thaw.evaluation.report import report_json, report_markdown
from thaw.evaluation.results import Report
from thaw.evaluation.stats import compare
from thaw.models.registry import create
from thaw.models.thaw_model import create as create_thaw

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("bench_model")

# Ablations switch off one part each; everything else stays the default.
ABLATIONS: dict[str, dict[str, Any]] = {
    "thaw-no-id-dropout": {"item_id_dropout": 0.0, "user_modes": (1.0, 0.0, 0.0, 0.0)},
    "thaw-no-attention": {"attention": False},
    "thaw-no-whitening": {"text_whitening": 0.0},
    "thaw-tfidf": {"encoder": "tfidf"},
    "thaw-bpr": {"loss": "bpr"},
    # ALDI needs a trainable student: a residual MLP on the text, distilled from the id-augmented items.
    "thaw-aldi": {"residual_text": True, "distill_weight": 1.0, "distill_rating_weight": 0.1},
    "thaw-no-prior": {"popularity_prior": False},  # new users' popularity prior (models/priors.py)
    "thaw-fixed-prior": {"adaptive_prior": False},  # one weight for any history, whatever is in it
    "thaw-no-borrowed-ids": {"cold_id_neighbors": 0},  # new items' borrowed id parts (CiteULike settings)
}


def thaw_options(dataset: str) -> dict[str, Any]:
    """thaw's settings for `dataset`: configs/<dataset>.toml when there is one (chosen on fold-0
    validation, as the baselines' settings are), else the defaults."""
    path = ROOT / "configs" / f"{dataset}.toml"
    if not path.exists():
        return {}
    values = tomllib.loads(path.read_text())
    return {**values.get("model", {}), **values.get("train", {})}


def _factory(name: str, dataset: str, options: dict[str, Any] | None = None) -> Callable[..., Any]:
    """thaw with the dataset's settings and `options`; a baseline with the settings bench_quality
    chose on fold-0 validation."""
    if name.startswith("thaw"):
        merged = thaw_options(dataset) | (options or {})
        return lambda seed=0: create_thaw(seed=seed, **merged)
    tuned = dict(BASELINE_OPTIONS.get(dataset, {}).get(name, {}))
    return lambda seed=0: create(name, seed=seed, **tuned)


def snapshot_for(dataset: str, encoder: str, threads: int) -> Any:
    """The dataset's snapshot with text vectors, via a cached SQLite store under var/."""
    path = ROOT / "var" / f"bench-{dataset}.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    with Store(f"sqlite:///{path}") as store:
        if store.stats().events == 0:
            log.info("ingesting %s into %s", dataset, path)
            ingest_dataset(store, dataset, data_dir_from_env())
        snapshot = build_snapshot(store)
        started = time.perf_counter()
        snapshot = encode_snapshot(snapshot, encoder, store=store, threads=threads)
        log.info("%s: text vectors in %.1fs", dataset, time.perf_counter() - started)
    return snapshot


def run(
    dataset: str,
    scenarios: Sequence[str],
    models: dict[str, Callable[..., Any]],
    *,
    folds: int,
    encoder: str,
    threads: int,
) -> dict[str, Report]:
    """Cross-validate `models` on `scenarios` of `dataset`; one report per scenario."""
    snapshot = snapshot_for(dataset, encoder, threads)

    def progress(p: Any) -> None:
        log.info("%s fold %d %s: %s (%d/%d)", p.scenario, p.fold, p.model, p.stage, p.done, p.total)

    return run_scenarios(
        models, snapshot, list(scenarios), folds=folds, seed=0, callback=progress,
        dataset=dataset, encoder=encoder,
    )


def thaw_fit_seconds(report: Report, model: str = "thaw") -> list[float]:
    """Seconds each fold's fit of `model` took."""
    return [f.fit_seconds for f in report.model(model).folds]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ablations", action="store_true", help="also run the ablation variants")
    parser.add_argument("--only", default="", help="comma-separated subset: citeulike-cold,citeulike-warm,movielens")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--markdown", type=Path, default=ROOT / "docs" / "benchmarks" / "model.md")
    parser.add_argument("--markdown-only", action="store_true", help="re-render the Markdown of the last run")
    parser.add_argument("--models", default="", help="comma-separated subset of the models to run (default: all)")
    parser.add_argument("--combine", type=Path, nargs="+", default=None, metavar="PKL",
                        help="render one Markdown from the saved reports of several runs (var/bench-model-reports.pkl copies)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    import torch

    torch.set_num_threads(args.threads)
    only = {s for s in args.only.split(",") if s}
    runs: list[tuple[str, list[str], dict[str, Callable[..., Any]]]] = []
    cold_models = {name: _factory(name, "citeulike-a") for name in ("thaw", "content-knn", "als", "popularity")}
    if args.ablations:
        cold_models |= {name: _factory("thaw", "citeulike-a", options) for name, options in ABLATIONS.items()}
    if not only or "citeulike-cold" in only:
        runs.append(("citeulike-a", ["cold-item"], cold_models))
    if not only or "citeulike-warm" in only:
        runs.append(("citeulike-a", ["warm"], {n: _factory(n, "citeulike-a") for n in ("thaw", "als", "content-knn", "popularity")}))
    if not only or "movielens" in only:
        # MovieLens targets are judged on NDCG@20, so thaw early-stops on validation NDCG@20 there.
        ndcg = {"eval_metric": "ndcg"}
        ml_models = {n: _factory(n, "ml-100k", ndcg) for n in ("thaw", "popularity", "content-knn", "als")}
        if args.ablations:
            ml_models |= {name: _factory("thaw", "ml-100k", ndcg | options) for name, options in ABLATIONS.items()}
        runs.append(("ml-100k", ["cold-user", "onboarding-3", "onboarding-3-random"], ml_models))

    if args.models:
        keep = {m for m in args.models.split(",") if m}
        runs = [(d, sc, {n: f for n, f in ms.items() if n in keep}) for d, sc, ms in runs]
    args.results.mkdir(parents=True, exist_ok=True)
    sections = []
    saved = ROOT / "var" / "bench-model-reports.pkl"
    if args.combine:  # one document from runs made separately (e.g. one --only each)
        sections = combine([pickle.loads(pkl.read_bytes()) for pkl in args.combine])
        for dataset, scenario, report, _ in sections:
            suffix = "" if report.folds == report.n_folds else f"-{report.folds}-folds"
            document = report_json(report)
            if any(m.model == "thaw" for m in report.models):
                document["thaw_fit_seconds"] = thaw_fit_seconds(report)
            (args.results / f"model-{dataset}-{scenario}{suffix}.json").write_text(json.dumps(document, indent=2) + "\n")
        args.markdown.write_text(markdown(sections, argv if argv is not None else sys.argv[1:]))
        return 0
    if args.markdown_only:  # re-render the Markdown from the reports of the last run
        sections = pickle.loads(saved.read_bytes())
        args.markdown.write_text(markdown(sections, argv if argv is not None else sys.argv[1:]))
        return 0
    for dataset, scenarios, models in runs:
        started = time.perf_counter()
        reports = run(dataset, scenarios, models, folds=args.folds, encoder=args.encoder, threads=args.threads)
        elapsed = time.perf_counter() - started
        for scenario, report in reports.items():
            path = args.results / f"model-{dataset}-{scenario}.json"
            document = report_json(report)
            if any(m.model == "thaw" for m in report.models):
                document["thaw_fit_seconds"] = thaw_fit_seconds(report)
            path.write_text(json.dumps(document, indent=2) + "\n")
            sections.append((dataset, scenario, report, elapsed))
            log.info("wrote %s", path)
    if sections:
        saved.write_bytes(pickle.dumps(sections))
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(sections, argv if argv is not None else sys.argv[1:]))
        log.info("wrote %s", args.markdown)
    return 0


def combine(runs: list[list[tuple[str, str, Report, float]]]) -> list[tuple[str, str, Report, float]]:
    """Sections of several runs as one: a (dataset, scenario) seen again gains that run's models,
    replacing those of the same name (a re-run of a baseline on the same folds, say)."""
    merged: dict[tuple[str, str, int], tuple[str, str, Report, float]] = {}
    for sections in runs:
        for dataset, scenario, report, elapsed in sections:
            key = (dataset, scenario, report.folds)  # runs over other folds stay separate sections
            if key not in merged:
                merged[key] = (dataset, scenario, report, elapsed)
                continue
            base = merged[key][2]
            if (base.seed, base.n_folds) != (report.seed, report.n_folds):
                raise ValueError(f"{dataset} {scenario}: runs with different seeds or partitions cannot be combined")
            names = {m.model for m in report.models}
            models = [m if m.model not in names else report.model(m.model) for m in base.models]
            models += [m for m in report.models if m.model not in {b.model for b in base.models}]
            merged[key] = (dataset, scenario, dataclasses.replace(base, models=models), merged[key][3] + elapsed)
    return list(merged.values())


# (dataset, scenario) -> (metric, reference baseline, required ratio): the targets of issue 4.
TARGETS: dict[tuple[str, str], tuple[str, str, float]] = {
    ("citeulike-a", "cold-item"): ("recall@20", "content-knn", 1.25),
    ("citeulike-a", "warm"): ("recall@20", "als", 1.0),
    ("ml-100k", "cold-user"): ("ndcg@20", "popularity", 1.0),
    ("ml-100k", "onboarding-3"): ("ndcg@20", "popularity", 1.2),
    ("ml-100k", "onboarding-3-random"): ("ndcg@20", "popularity", 1.2),
}


def markdown(sections: list[tuple[str, str, Report, float]], argv: Sequence[str]) -> str:
    """docs/benchmarks/model.md: the command, targets, ablations, then every report in full."""
    command = "HF_HUB_OFFLINE=1 THAW_DATA=../shared/data .venv/bin/python bench/bench_model.py " + " ".join(argv)
    judged = [(d, sc) for d, sc, r, _ in sections
              if {"thaw", TARGETS.get((d, sc), ("", "popularity", 1.0))[1]} <= {m.model for m in r.models}]
    title = "thaw against the baselines" if judged else "thaw's parts, switched off one at a time"
    lines = [
        f"# Model quality: {title}", "",
        f"Made by `{command.strip()}`" + (
            ", which `make bench-model` runs after its three runs on the same folds (CiteULike cold-item,"
            " CiteULike warm, MovieLens with the ablations)." if "--combine" in argv else "."), "",
        "Cross-validation with the evaluation harness (same folds for every model; see each report); thaw",
        "early-stops on each fold's validation pairs only. p = paired t-test over the fold means and",
        "Wilcoxon signed-rank test over users (both two-sided). See docs/methods.md for the model.", "",
    ]
    if judged:
        lines += [
            "## Targets", "",
            "| dataset · scenario | metric (ranking) | thaw | reference | ratio | target | met | p (folds) | p (users) "
            "| thaw fit s/fold |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
    most_folds: dict[tuple[str, str], int] = {}
    for dataset, scenario, report, _ in sections:
        most_folds[(dataset, scenario)] = max(most_folds.get((dataset, scenario), 0), report.folds)
    for dataset, scenario, report, _ in sections:
        if report.folds < most_folds[(dataset, scenario)]:
            continue  # a shorter run of the same scenario (ablations over fewer folds) is not a target row
        metric, reference, ratio = TARGETS.get((dataset, scenario), ("recall@20", "popularity", 1.0))
        if not {"thaw", reference} <= {m.model for m in report.models}:
            continue  # a run of thaw's variants alone (ablations) has no target row
        ranking = report.primary
        ref = float(np.mean(report.model(reference).per_fold(ranking, metric)))
        value = float(np.mean(report.model("thaw").per_fold(ranking, metric)))
        test = compare(report, "thaw", reference, ranking, metric)
        met = value >= ratio * ref and (ratio == 1.0 or test.p_folds < 0.05 or test.p_users < 0.05)
        label = f"thaw (configs/{dataset}.toml)" if thaw_options(dataset) else "thaw"
        lines.append(
            f"| {dataset} · {scenario} | {metric} ({ranking}) | {label} {value:.4f} | {reference} {ref:.4f} | "
            f"{value / ref:.2f}× | ≥ {ratio:.2f}× | {'yes' if met else 'no'} | {_p(test.p_folds)} | "
            f"{_p(test.p_users)} | {np.mean(thaw_fit_seconds(report)):.0f} |"
        )
    ablated = [(d, sc, r) for d, sc, r, _ in sections if any(m.model != "thaw" and m.model.startswith("thaw")
                                                          for m in r.models)]
    if ablated:
        lines += ["", "## Ablations", "",
                  "Each variant changes one setting of thaw, most switch a part off (mean over folds; Δ against thaw).", ""]
        for dataset, scenario, report in ablated:
            metric = TARGETS.get((dataset, scenario), ("recall@20", "", 1.0))[0]
            ranking = report.primary
            base = float(np.mean(report.model("thaw").per_fold(ranking, metric)))
            lines += [f"**{dataset} · {scenario}** ({metric}, `{ranking}` ranking, {report.folds} of {report.n_folds} folds)", "",
                      "| variant | what changes | value | Δ vs thaw | p (users) |", "|---|---|---|---|---|"]
            lines.append(f"| thaw | ({'configs/' + dataset + '.toml' if thaw_options(dataset) else 'defaults'}) | {base:.4f} | | |")
            for m in report.models:
                if m.model == "thaw" or not m.model.startswith("thaw"):
                    continue
                value = float(np.mean(m.per_fold(ranking, metric)))
                test = compare(report, m.model, "thaw", ranking, metric)
                change = ", ".join(f"{k}={v}" for k, v in ABLATIONS.get(m.model, {}).items())
                lines.append(f"| {m.model} | {change} | {value:.4f} | {value - base:+.4f} | {_p(test.p_users)} |")
            lines.append("")
    lines.append("")
    for dataset, scenario, report, elapsed in sections:
        lines += [report_markdown(report, heading_level=2), f"Wall time of this run: {elapsed:.0f}s.", ""]
    return "\n".join(lines)


def _p(p: float) -> str:
    if p != p:  # nan
        return "n/a"
    return "<1e-4" if p < 1e-4 else f"{p:.4f}"


if __name__ == "__main__":
    raise SystemExit(main())
