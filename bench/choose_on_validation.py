"""Compare thaw settings on one fold's validation pairs only (never its test): how settings are chosen.

    HF_HUB_OFFLINE=1 THAW_DATA=../shared/data .venv/bin/python bench/choose_on_validation.py \
        citeulike-a warm '{"default": {}, "thaw-als": {"id_dim": 200, "id_init": "als"}}'

Prints, per variant, the best validation metric early stopping saw and its epoch (one JSON line
each). This is how `thaw-als` (docs/methods.md) was chosen: CiteULike warm, fold 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_model import snapshot_for  # noqa: E402
from thaw.evaluation.harness import fit_data  # noqa: E402
from thaw.evaluation.splits import make_split  # noqa: E402
from thaw.models.thaw_model import create  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=["ml-100k", "citeulike-a"])
    parser.add_argument("scenario")
    parser.add_argument("variants", help="JSON object: variant name -> thaw options")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--encoder", default="minilm")
    args = parser.parse_args(argv)
    variants = json.loads(args.variants)
    snapshot = snapshot_for(args.dataset, args.encoder, threads=1)
    split = make_split(snapshot, args.scenario, fold=args.fold)
    data = fit_data(snapshot, split, seed=0)
    for name, options in variants.items():
        started = time.perf_counter()
        history = create(seed=0, **options).fit(data).history_
        print(json.dumps({"variant": name, "fold": args.fold, "validation": history.metric,
                          "best": round(history.best_metric, 4), "best_epoch": history.best_epoch,
                          "seconds": round(time.perf_counter() - started, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
