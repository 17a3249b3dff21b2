"""The quality cost of differentially private training (user-level DP-SGD), same folds for every variant.

    THAW_DATA=../shared/data HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_privacy.py

ml-100k cold-user and onboarding-3 (one fit per fold shared by both; early stopping on validation
NDCG@20, as in bench_model). Variants:
  thaw                 the default model (not private)
  thaw-dp-clip-only    the private model and path (no ids, frozen item tower, per-user clipping)
                       with negligible noise: the cost of the architecture alone
  thaw-dp-eps8/eps1    the same at epsilon 8 and 1 (delta = 1 / (10 x training users))
  popularity           the floor
Writes bench/results/privacy.json and docs/benchmarks/privacy.md.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_model import snapshot_for  # noqa: E402
from variants import (  # noqa: E402
    bench_parser, fold_summary, run_variants, save_results, start_logging, variant_table, write_with_reading,
)

from thaw.models.registry import create  # noqa: E402
from thaw.models.thaw_model import ThawRecommender  # noqa: E402
from thaw.models.thaw_model import create as create_thaw  # noqa: E402
from thaw.training.private import private_config  # noqa: E402

METRICS = ("ndcg@20", "recall@20")


def _private(seed: int, epochs: int, **train: Any) -> ThawRecommender:
    base = create_thaw(seed=seed, eval_metric="ndcg", epochs=epochs, **train)
    return ThawRecommender(private_config(base.config))


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser(__doc__, "privacy")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of the private variants (epsilon is spread over them)")
    args = parser.parse_args(argv)
    start_logging()
    factories = {
        "thaw": lambda seed=0: create_thaw(seed=seed, eval_metric="ndcg"),
        "thaw-dp-clip-only": lambda seed=0: _private(seed, args.epochs, dp_noise_multiplier=1e-6),
        "thaw-dp-eps8": lambda seed=0: _private(seed, args.epochs, dp_epsilon=8.0),
        "thaw-dp-eps1": lambda seed=0: _private(seed, args.epochs, dp_epsilon=1.0),
        "popularity": lambda seed=0: create("popularity", seed=seed),
    }
    snapshot = snapshot_for("ml-100k", args.encoder, threads=1)
    reports, fits, elapsed = run_variants(snapshot, "ml-100k", ["cold-user", "onboarding-3"], factories,
                                          folds=args.folds, encoder=args.encoder)
    spent = {name: [h.privacy for h in f.histories] for name, f in fits.items() if f.histories}
    document = {
        "dataset": "ml-100k", "folds": args.folds, "private_epochs": args.epochs, "encoder": args.encoder,
        "elapsed_seconds": elapsed, "privacy_per_fold": spent,
        "scenarios": {s: fold_summary(r, fits, METRICS) for s, r in reports.items()},
    }
    command = save_results(args.results, document, "bench_privacy.py", argv)
    lines = [
        "# Differentially private training: what it costs", "",
        f"Made by `{command}` (`make bench-privacy`); numbers in `bench/results/privacy.json`.",
        "What is private and what is not: [docs/privacy.md](../privacy.md).", "",
        f"ml-100k, {args.folds} folds of the evaluation harness; cold-user and onboarding-3 share one fit per",
        "fold; every variant early-stops on the fold's validation NDCG@20 (epoch 0, the untrained content",
        f"model, included). Private variants train at most {args.epochs} epochs (their noise is calibrated",
        "to that many Poisson-sampled steps); the epsilon actually spent (fewer steps when stopped early)",
        "is below. Δ and p-values: against `thaw` (paired t-test over folds; Wilcoxon over users).", "",
        "| variant | epsilon spent per fold | delta | noise multiplier | best epoch per fold |",
        "|---|---|---|---|---|",
    ]
    for name, values in spent.items():
        if values and values[0] is not None:
            eps = ", ".join(f"{v['epsilon']:.3g}" for v in values)
            best = ", ".join(str(h.best_epoch) for h in fits[name].histories)
            lines.append(f"| {name} | {eps} | {values[0]['delta']:.1e} | {values[0]['noise_multiplier']:.3g} | {best} |")
    lines.append("")
    for scenario, report in reports.items():
        summary = document["scenarios"][scenario]
        lines += [f"## ml-100k · {scenario} (`{report.primary}` ranking)", ""]
        lines += variant_table(report, summary, METRICS, "thaw")
        lines.append("")
    lines += [f"Wall time of the whole run: {elapsed:.0f}s.", ""]
    write_with_reading(args.markdown, lines)
    logging.info("wrote %s", args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
