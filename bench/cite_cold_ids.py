"""thaw with borrowed id parts for cold items (training/neighbor_ids.py) on CiteULike cold-item.

The variant is thaw with its id blocks started at implicit-ALS factors (`thaw-als`, the
validated warm settings) plus `cold_id_neighbors`: after training every cold item takes the
softmax-weighted mean id embedding of its nearest warm items by whitened-text cosine, scaled by
a weight chosen on validation. Two modes:

    # validation only: fit on one fold, print the weight curve validation chose from
    THAW_DATA=../shared/data HF_HUB_OFFLINE=1 .venv/bin/python bench/cite_cold_ids.py --validate --fold 0
    # the 5-fold test run against content-KNN (same folds and harness as bench_model.py)
    THAW_DATA=../shared/data HF_HUB_OFFLINE=1 .venv/bin/python bench/cite_cold_ids.py --folds 5 \\
        --results /work/notes/cite-results --markdown /work/notes/cite-model.md
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from bench_model import WARM_VARIANTS, _factory, _p, run, snapshot_for, thaw_fit_seconds  # noqa: E402
from thaw.evaluation.report import report_json, report_markdown  # noqa: E402
from thaw.evaluation.results import Report  # noqa: E402
from thaw.evaluation.stats import compare  # noqa: E402

NAME = "thaw-als-cold-ids"
OPTIONS: dict[str, Any] = WARM_VARIANTS["thaw-als"] | {"cold_id_neighbors": 20, "cold_id_temperature": 0.1}


def validate(fold: int, options: dict[str, Any]) -> None:
    """Fit on `fold`'s training pairs; print training and borrowed-id validation numbers."""
    from thaw.evaluation.harness import fit_data
    from thaw.evaluation.splits import make_split
    from thaw.models.thaw_model import create

    snapshot = snapshot_for("citeulike-a", "minilm", 1)
    data = fit_data(snapshot, make_split(snapshot, "cold-item", fold=fold), seed=0)
    started = time.perf_counter()
    history = create(seed=0, **options).fit(data).history_
    print(json.dumps({"fold": fold, "options": options, "epoch0": history.epochs[0]["val"],
                      "best_epoch": history.best_epoch, "best": history.best_metric,
                      "cold_ids": history.cold_ids, "seconds": round(time.perf_counter() - started, 1)},
                     default=str), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--validate", action="store_true")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--options", default="{}", help="JSON: settings that replace the variant's")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--models", default=f"{NAME},content-knn")
    parser.add_argument("--results", type=Path, default=Path("/work/notes/cite-results"))
    parser.add_argument("--markdown", type=Path, default=Path("/work/notes/cite-model.md"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    import torch

    torch.set_num_threads(1)
    options = OPTIONS | json.loads(args.options)
    if args.validate:
        validate(args.fold, options)
        return 0
    factories = {NAME: _factory("thaw", "citeulike-a", options)}
    factories["thaw-als"] = _factory("thaw", "citeulike-a", WARM_VARIANTS["thaw-als"])  # the ablation: no borrowing
    factories |= {n: _factory(n, "citeulike-a") for n in ("thaw", "content-knn", "als")}
    models = {n: f for n, f in factories.items() if n in set(args.models.split(","))}
    started = time.perf_counter()
    reports = run("citeulike-a", ["cold-item"], models, folds=args.folds, encoder="minilm", threads=1)
    elapsed = time.perf_counter() - started
    args.results.mkdir(parents=True, exist_ok=True)
    sections = []
    for scenario, report in reports.items():
        document = report_json(report)
        document["thaw_fit_seconds"] = {n: thaw_fit_seconds(report, n) for n in models if n.startswith("thaw")}
        (args.results / f"model-citeulike-a-{scenario}.json").write_text(json.dumps(document, indent=2) + "\n")
        sections.append(("citeulike-a", scenario, report, elapsed))
    (args.results / "reports.pkl").write_bytes(pickle.dumps(sections))
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# CiteULike cold-item: {NAME}", "", f"Made by `bench/cite_cold_ids.py {' '.join(sys.argv[1:])}`; "
             f"{NAME} = thaw with {', '.join(f'{k}={v}' for k, v in options.items())}.", ""]
    for _, _, report, seconds in sections:
        lines += target_rows(report, models) + ["", report_markdown(report, heading_level=2),
                                                f"Wall time of this run: {seconds:.0f}s.", ""]
    args.markdown.write_text("\n".join(lines))
    return 0


def target_rows(report: Report, models: dict[str, Any], reference: str = "content-knn") -> list[str]:
    """Recall@20 (cold ranking) per model: mean ± std, ratio to `reference`, paired p-values, fit s."""
    ranking, metric = report.primary, "recall@20"
    ref = float(np.mean(report.model(reference).per_fold(ranking, metric)))
    lines = ["| model | recall@20 (mean ± std over folds) | ratio to content-knn | target 1.25× met "
             "| p (folds) | p (users) | fit s/fold |", "|---|---|---|---|---|---|---|"]
    for name in models:
        values = report.model(name).per_fold(ranking, metric)
        mean, std = float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        cells = ["", "", "", ""]
        if name != reference:
            test = compare(report, name, reference, ranking, metric)
            met = mean >= 1.25 * ref and (test.p_folds < 0.05 or test.p_users < 0.05)
            cells = [f"{mean / ref:.3f}×", "yes" if met else "no", _p(test.p_folds), _p(test.p_users)]
        seconds = np.mean([f.fit_seconds for f in report.model(name).folds])
        lines.append(f"| {name} | {mean:.4f} ± {std:.4f} | {' | '.join(cells)} | {seconds:.0f} |")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
