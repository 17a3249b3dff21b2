"""Distributed training: thaw on 2 processes (DDP over gloo) against thaw on 1, same folds.

    THAW_DATA=../shared/data HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_distributed.py

ml-100k cold-user and onboarding-3 (one fit per fold shared by both; early stopping on validation
NDCG@20, as in bench_model), 5 folds. Writes bench/results/distributed.json and
docs/benchmarks/distributed.md. Text vectors come from var/bench-ml-100k.sqlite (bench_model).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_model import snapshot_for  # noqa: E402
from variants import (  # noqa: E402
    bench_parser, fold_summary, run_variants, save_results, start_logging, variant_table, write_with_reading,
)

from thaw.models.thaw_model import create as create_thaw  # noqa: E402
from thaw.training.distributed import create as create_distributed  # noqa: E402

METRICS = ("ndcg@20", "recall@20")


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser(__doc__, "distributed")
    parser.add_argument("--nproc", type=int, default=2)
    args = parser.parse_args(argv)
    start_logging()
    options = {"eval_metric": "ndcg"}
    single, parallel = "thaw (1 process)", f"thaw ({args.nproc} processes)"
    factories = {
        single: lambda seed=0: create_thaw(seed=seed, **options),
        parallel: lambda seed=0: create_distributed(seed=seed, nproc=args.nproc, **options),
    }
    snapshot = snapshot_for("ml-100k", args.encoder, threads=1)
    reports, fits, elapsed = run_variants(snapshot, "ml-100k", ["cold-user", "onboarding-3"], factories,
                                          folds=args.folds, encoder=args.encoder)
    document = {
        "dataset": "ml-100k", "folds": args.folds, "nproc": args.nproc, "backend": "gloo", "encoder": args.encoder,
        "metric_ranking": {s: r.primary for s, r in reports.items()}, "elapsed_seconds": elapsed,
        "scenarios": {s: fold_summary(r, fits, METRICS) for s, r in reports.items()},
    }
    command = save_results(args.results, document, "bench_distributed.py", argv)
    lines = [
        "# Distributed training: 2 processes against 1", "",
        f"Made by `{command}` (`make bench-distributed`); numbers in `bench/results/distributed.json`.",
        "How to run it, also across machines: [docs/distributed.md](../distributed.md).", "",
        f"ml-100k, {args.folds} folds of the evaluation harness; the cold-user and onboarding-3 scenarios share",
        "one fit per fold. Both variants early-stop on the fold's validation NDCG@20. The distributed variant",
        f"is `thaw.training.distributed.DistributedThawRecommender`: {args.nproc} torchrun processes (gloo on",
        "loopback) each train on a shard of every batch of users, DDP averages the gradients, rank 0",
        "validates and writes the checkpoint the harness then scores. *fit s* is the whole fit as the",
        "harness timed it (for the distributed variant: process start-up, data hand-over and checkpoint",
        "included); *loop s* is the training loop alone (rank 0). Δ and p-values: against 1 process",
        "(paired t-test over folds; Wilcoxon over users).", "",
    ]
    for scenario, report in reports.items():
        summary = document["scenarios"][scenario]
        lines += [f"## ml-100k · {scenario} (`{report.primary}` ranking)", ""]
        lines += variant_table(report, summary, METRICS, single)
        lines += ["", "Per fold (NDCG@20): " + "; ".join(
            f"{name}: " + ", ".join(f"{v:.4f}" for v in values["metrics"]["ndcg@20"]["per_fold"])
            for name, values in summary.items()), ""]
    lines += [f"Wall time of the whole run: {elapsed:.0f}s.", ""]
    write_with_reading(args.markdown, lines)
    logging.info("wrote %s", args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
