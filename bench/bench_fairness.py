"""Exposure benchmark: how much accuracy buys how much cold-item exposure, per re-ranking strength.

Sweeps the two re-rankings of `thaw.models.rerank` (cold-boost λ, cold-share ρ) over models
fitted once per fold on the cold-item scenario of MovieLens 100K and CiteULike-a, and measures
the `overall` ranking (all items compete) on validation and test pairs. Writes
bench/results/fairness.json, docs/benchmarks/fairness.md and docs/benchmarks/img/fairness.png.
Usage (what `make bench-fairness` runs):

    HF_HUB_OFFLINE=1 THAW_DATA=../shared/data .venv/bin/python bench/bench_fairness.py

The strengths recommended per model come from validation pairs only (never test): the most
accurate strength, and the strongest one that keeps 95% of the un-re-ranked validation recall.
A hand-written reading below the marker line of the Markdown file survives a rerun.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_quality import OPTIONS, _limit_threads, _prepare, run_jobs  # noqa: E402
from thaw.evaluation.report import finite_json  # noqa: E402

DATASETS = ("ml-100k", "citeulike-a")
MODELS = ("content-knn", "als", "thaw")
BOOST = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
SHARE = (0.1, 0.2, 0.3, 0.5)
KEEP = 0.95  # "fair" choice: the strongest setting keeping this share of validation recall
METRICS = ("recall@20", "ndcg@20", "cold_recall@20", "warm_recall@20", "cold_exposure@20",
           "gini@20", "coverage@20", "mean_popularity@20")
BASE_METRICS = ("recall@20", "ndcg@20", "cold_exposure@20", "gini@20", "coverage@20")
MARKER = "<!-- reading: hand-written, kept when the script rewrites this file -->"


class CachedScores:
    """A fitted model whose score batches are remembered, so every strength re-ranks the same scores."""

    def __init__(self, model: Any) -> None:
        self.model, self.name = model, model.name
        self._cache: dict[bytes, np.ndarray] = {}

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        key = np.asarray(users, np.int64).tobytes()
        if key not in self._cache:
            self._cache[key] = np.asarray(self.model.score(users, history))
        return self._cache[key]

    def clear(self) -> None:
        self._cache.clear()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", default="5,2", help="folds per dataset, in --datasets order "
                        "(CiteULike: 2 of 5 to stay near 10 minutes on 2 shared cores)")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--boost", default=",".join(map(str, BOOST)), help="cold-boost strengths λ")
    parser.add_argument("--share", default=",".join(map(str, SHARE)), help="cold-share strengths ρ")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "fairness.json")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "benchmarks" / "fairness.md")
    parser.add_argument("--db-dir", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--jobs", type=int, default=2, help="datasets evaluated in parallel processes")
    parser.add_argument("--from-json", action="store_true",
                        help="only rewrite the Markdown and the plot from the --results file")
    args = parser.parse_args(argv)
    if args.from_json:
        doc = json.loads(args.results.read_text())
        _write_docs(doc, args.docs, _plot(doc, args.docs.parent / "img" / "fairness.png"))
        print(f"rewrote {args.docs} from {args.results}", flush=True)
        return 0

    from thaw.config import threads_from_env

    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    folds = [int(f) for f in args.folds.split(",")]
    folds = folds + [folds[-1]] * (len(datasets) - len(folds))
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    variants = [("none", 0.0)] + [("cold-boost", float(v)) for v in args.boost.split(",")]
    variants += [("cold-share", float(v)) for v in args.share.split(",")]
    threads = threads_from_env()
    started = time.perf_counter()
    jobs = [(d, f, models, variants, args.seed, args.encoder, args.db_dir, threads)
            for d, f in zip(datasets, folds)]
    outputs = run_jobs(_dataset_job, jobs, args.jobs)
    command = "python bench/bench_fairness.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    doc = {
        "command": command.strip(),
        "scenario": "cold-item",
        "ranking": "overall",
        "seed": args.seed,
        "encoder": args.encoder,
        "variants": [{"method": m, "strength": s} for m, s in variants],
        "keep": KEEP,
        "wall_seconds": time.perf_counter() - started,
        "datasets": {d: out for d, out in zip(datasets, outputs)},
    }
    for out in doc["datasets"].values():
        out["chosen"] = _choose(out["points"])
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(finite_json(doc), indent=2, allow_nan=False) + "\n")
    image = _plot(doc, args.docs.parent / "img" / "fairness.png")
    _write_docs(doc, args.docs, image)
    print(f"wrote {args.results}, {args.docs} in {doc['wall_seconds'] / 60:.1f} min", flush=True)
    return 0


def _dataset_job(dataset: str, folds: int, models: list[str], variants: list[tuple[str, float]], seed: int,
                 encoder: str, db_dir: Path, threads: int) -> dict[str, Any]:
    """Fit every model once per fold; evaluate every re-ranking strength on validation and test."""
    from thaw.config import data_dir_from_env
    from thaw.evaluation.harness import evaluate_fold, fit_data
    from thaw.evaluation.results import mean_std
    from thaw.evaluation.splits import make_split
    from thaw.models.registry import create
    from thaw.models.rerank import ExposureReranker

    cpu0, wall0 = time.process_time(), time.perf_counter()
    _limit_threads(threads)
    snapshot, _ = _prepare(dataset, db_dir, data_dir_from_env(), encoder, threads)
    options = OPTIONS.get(dataset, {})
    values: dict[tuple[str, str, float, str], dict[str, list[float]]] = {}
    base: dict[str, dict[str, dict[str, list[float]]]] = {m: {} for m in models}
    fit_seconds: dict[str, list[float]] = {m: [] for m in models}
    invariant: dict[str, bool] = {}
    strongest = max([s for m, s in variants if m == "cold-boost"], default=0.0)
    for fold in range(folds):
        split = make_split(snapshot, "cold-item", fold=fold, seed=seed)
        val_split = dataclasses.replace(split, test=split.val)  # validation pairs, ranked like the test
        data = fit_data(snapshot, split, seed=seed)
        for name in models:
            model = create(name, seed=seed, **options.get(name, {}))
            t0 = time.perf_counter()
            model.fit(data)
            fit_seconds[name].append(time.perf_counter() - t0)
            cached = CachedScores(model)
            full = evaluate_fold(cached, snapshot, split, data=data)
            for ranking, result in full.rankings.items():
                for metric in BASE_METRICS:
                    base[name].setdefault(ranking, {}).setdefault(metric, []).append(result.aggregate[metric])
            if fold == 0 and strongest > 0:
                # The boost keeps the order inside the cold and inside the warm group: those
                # rankings must not move at all, whatever λ.
                boosted = ExposureReranker(cached, "cold-boost", strongest, prefit=True).fit(data)
                again = evaluate_fold(boosted, snapshot, split, data=data, rankings=["cold", "warm"])
                invariant[name] = all(
                    np.array_equal(full.rankings[r].per_user[m], again.rankings[r].per_user[m])
                    for r in ("cold", "warm") for m in full.rankings[r].per_user
                )
            for which, target in (("val", val_split), ("test", split)):
                cached.clear()
                for method, strength in variants:
                    scorer = cached if method == "none" else ExposureReranker(
                        cached, method, strength, prefit=True, seed=seed).fit(data)
                    result = evaluate_fold(scorer, snapshot, target, data=data, rankings=["overall"])
                    slot = values.setdefault((name, method, strength, which), {})
                    for metric in METRICS:
                        slot.setdefault(metric, []).append(result.rankings["overall"].aggregate[metric])
            cached.clear()
            print(f"[{dataset}] fold {fold} {name}: fit {fit_seconds[name][-1]:.1f}s, "
                  f"{time.perf_counter() - wall0:.0f}s so far", flush=True)
    points = []
    for name in models:
        for method, strength in variants:
            point: dict[str, Any] = {"model": name, "method": method, "strength": strength}
            for which in ("val", "test"):
                per_fold = values[(name, method, strength, which)]
                point[which] = {m: mean_std(np.array(v)) for m, v in per_fold.items()}
            points.append(point)
    return {
        "folds": folds,
        "n_users": snapshot.n_users,
        "n_items": snapshot.n_items,
        "options": {m: options.get(m, {}) for m in models},
        "fit_seconds": {m: float(np.mean(v)) for m, v in fit_seconds.items()},
        "baseline": {m: {r: {k: mean_std(np.array(v)) for k, v in per.items()} for r, per in rankings.items()}
                     for m, rankings in base.items()},
        "cold_and_warm_rankings_unchanged_by_boost": invariant,
        "points": points,
        "wall_seconds": time.perf_counter() - wall0,
        "cpu_seconds": time.process_time() - cpu0,
    }


def _choose(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model and method: the most accurate strength and the strongest keeping KEEP of recall (validation)."""
    chosen = []
    for model in dict.fromkeys(p["model"] for p in points):
        zero = next(p for p in points if p["model"] == model and p["method"] == "none")
        for method in ("cold-boost", "cold-share"):
            line = [zero] + sorted((p for p in points if p["model"] == model and p["method"] == method),
                                   key=lambda p: p["strength"])
            if len(line) == 1:
                continue
            val = [p["val"]["recall@20"]["mean"] for p in line]
            best = line[int(np.argmax(val))]  # the first (weakest) of equal maxima
            keep = [p for p, v in zip(line, val) if v >= KEEP * val[0]]
            for rule, p in (("most accurate", best), (f"keeps {KEEP:.0%}", keep[-1])):
                chosen.append({"model": model, "method": method, "rule": rule, "strength": p["strength"],
                               "point_method": p["method"]})
    return chosen


def _plot_points(doc: dict[str, Any], split: str = "test") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    points, marked = [], []
    for dataset, out in doc["datasets"].items():
        for p in out["points"]:
            means = {m: s["mean"] for m, s in p[split].items()}
            methods = ["cold-boost", "cold-share"] if p["method"] == "none" else [p["method"]]
            for method in methods:  # strength 0 starts both curves
                points.append({"dataset": dataset, "model": p["model"], "method": method,
                               "strength": p["strength"], **means})
        for c in out["chosen"]:
            if c["rule"] != "most accurate":
                p = _point(out, c)
                marked.append({"dataset": dataset, **{m: s["mean"] for m, s in p[split].items()}})
    return points, marked


def _point(out: dict[str, Any], choice: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in out["points"] if p["model"] == choice["model"]
                and p["method"] == choice["point_method"] and p["strength"] == choice["strength"])


def _plot(doc: dict[str, Any], path: Path) -> Path:
    from thaw.evaluation.plots import exposure_tradeoff

    points, marked = _plot_points(doc)
    return exposure_tradeoff(points, path, marked=marked)


def _cell(stat: dict[str, Any], digits: int = 4) -> str:
    mean, std = stat["mean"], stat["std"]
    return "–" if mean is None or not np.isfinite(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _invariance(doc: dict[str, Any]) -> str:
    parts = []
    for dataset, out in doc["datasets"].items():
        checks = out["cold_and_warm_rankings_unchanged_by_boost"].items()
        parts.append(f"{dataset}: " + ", ".join(f"{m} {'unchanged' if ok else 'CHANGED'}" for m, ok in checks))
    return "; ".join(parts)


def _write_docs(doc: dict[str, Any], path: Path, image: Path) -> None:
    reading = ""
    if path.exists() and MARKER in path.read_text():
        reading = path.read_text().split(MARKER, 1)[1].strip()
    cpu = sum(out["cpu_seconds"] for out in doc["datasets"].values())
    lines = [
        "# Fairness: cold-item exposure and what it costs",
        "",
        f"Command: `{doc['command']}` (`make bench-fairness`)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared with other "
        f"jobs), 1 thread per process, one process per dataset; wall time {doc['wall_seconds'] / 60:.1f} min, "
        f"CPU time {cpu / 60:.1f} min. Folds: "
        + ", ".join(f"{d} {out['folds']} of 5" for d, out in doc["datasets"].items())
        + f"; seed {doc['seed']}; text vectors `{doc['encoder']}`.",
        "",
        "## Definitions",
        "",
        "All list metrics pool the top-20 lists of every test user of one fold (mean ± sample std",
        "over folds). A *cold* item has no training interaction.",
        "",
        "- **cold share** (`cold_exposure@20`): share of all top-20 slots that show a cold item.",
        "- **Gini** (`gini@20`): Gini coefficient of the recommendation counts c_i (how many users'",
        "  top-20 holds item i) over every candidate item, never-recommended ones counting 0. With c",
        "  sorted ascending, G = Σ_j (2j − n − 1) c_(j) / (n Σ_j c_(j)); 0 = every candidate shown",
        "  equally often, (n − 1)/n = every slot on one item. Lower = exposure spread more evenly.",
        "- **coverage** (`coverage@20`): distinct items in all lists / candidate items.",
        "- **mean popularity** (`mean_popularity@20`): mean over slots of the shown item's training",
        "  popularity (share of warm users who interacted with it in training; 0 for cold items).",
        "- **cold R@20 / warm R@20** (`cold_recall@20`, `warm_recall@20`): Recall@20 of the `overall`",
        "  list counted over the user's cold test items only / warm test items only. The `overall`",
        "  ranking ranks all items for users who have both cold and warm test items (ColdRec's",
        "  convention), so both are defined for every user; R@20 counts both together.",
        "",
        "## Re-ranking (`thaw.models.rerank`, `thaw evaluate --rerank`)",
        "",
        "A post-processing step on any model's scores, per user, on the items outside the user's",
        "history; it keeps the model's order among cold items and among warm items, so the `cold`",
        "and `warm` rankings of the cold-item scenario cannot change (checked on fold 0 at the",
        f"strongest boost: {_invariance(doc)}).",
        "Only the `overall` ranking, where cold and warm items compete, moves.",
        "",
        "- `cold-boost=λ`: s' = (s − μ_u) / σ_u + λ·[cold], μ_u and σ_u the mean and standard",
        "  deviation of the user's scores over non-history items. λ is in units of the user's own",
        "  score spread; how far that reaches still depends on the shape of a model's score",
        "  distribution (a model whose top items stand many σ above the rest needs a larger λ).",
        "- `cold-share=ρ`: each top-20 holds at least ⌈20ρ⌉ cold items (as many as exist): the",
        "  model's lowest-ranked warm items give way to its best cold items outside the list.",
        "",
        "Both are monotone (a list's cold count never falls as the strength grows) and strength 0",
        "is the model itself. Strengths swept: cold-boost λ ∈ {"
        + ", ".join(f"{v['strength']:g}" for v in doc["variants"] if v["method"] == "cold-boost")
        + "}, cold-share ρ ∈ {"
        + ", ".join(f"{v['strength']:g}" for v in doc["variants"] if v["method"] == "cold-share") + "}.",
        "",
        "Strengths are chosen on **validation** pairs (the cold validation items and warm",
        "validation pairs of each fold, ranked exactly like the test), never on test: *most accurate*",
        f"= the strength with the highest validation overall R@20; *keeps {KEEP:.0%}* = the strongest",
        f"setting whose validation overall R@20 is at least {KEEP:.0%} of the model's own. The",
        "test columns below are reported for those choices.",
        "",
        f"![accuracy against exposure]({image.relative_to(path.parent)})",
        "",
        "Squares: no re-ranking; solid lines cold-boost, dashed cold-share; ringed: the *keeps "
        f"{KEEP:.0%}* choice. Test folds.",
        "",
    ]
    for dataset, out in doc["datasets"].items():
        lines += _dataset_section(dataset, out)
    lines += ["## Reading", "", MARKER, "", reading or "(to be written after the run)", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def _dataset_section(dataset: str, out: dict[str, Any]) -> list[str]:
    fits = ", ".join(f"{m} {s:.1f}" for m, s in out["fit_seconds"].items())
    options = ", ".join(f"{m} `{o}`" for m, o in out["options"].items() if o)
    lines = [f"## {dataset}", "",
             f"{out['folds']} fold(s); {out['n_users']} users, {out['n_items']} items. Fit seconds per fold: "
             f"{fits}. Model options: {options or 'defaults'}.", "",
             "Without re-ranking, every ranking (test):", "",
             "| model | cold R@20 | warm R@20 | overall R@20 | overall cold share | overall Gini |",
             "|---|---|---|---|---|---|"]
    for model, r in out["baseline"].items():
        cells = [_cell(r["cold"]["recall@20"]), _cell(r["warm"]["recall@20"]), _cell(r["overall"]["recall@20"]),
                 _cell(r["overall"]["cold_exposure@20"], 3), _cell(r["overall"]["gini@20"], 3)]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", "Chosen on validation, measured on test (`overall` ranking):", "",
              "| model | method | rule | strength | val R@20 | test R@20 | cold R@20 | warm R@20 | cold share | Gini |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for c in out["chosen"]:
        p = _point(out, c)
        t = p["test"]
        cells = [_cell(p["val"]["recall@20"]), _cell(t["recall@20"]), _cell(t["cold_recall@20"]),
                 _cell(t["warm_recall@20"]), _cell(t["cold_exposure@20"], 3), _cell(t["gini@20"], 3)]
        lines.append(f"| {c['model']} | {c['method']} | {c['rule']} | {c['strength']:g} | " + " | ".join(cells) + " |")
    lines += ["", "<details><summary>Every strength (test, overall ranking)</summary>", "",
              "| model | method | strength | R@20 | NDCG@20 | cold R@20 | warm R@20 | cold share | Gini | coverage "
              "| mean pop. |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in out["points"]:
        t = p["test"]
        cells = [_cell(t[m]) for m in ("recall@20", "ndcg@20", "cold_recall@20", "warm_recall@20")]
        cells += [_cell(t[m], 3) for m in ("cold_exposure@20", "gini@20", "coverage@20", "mean_popularity@20")]
        lines.append(f"| {p['model']} | {p['method']} | {p['strength']:g} | " + " | ".join(cells) + " |")
    return lines + ["", "</details>", ""]


if __name__ == "__main__":
    raise SystemExit(main())
