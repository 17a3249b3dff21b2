"""Borrowed id parts for cold items (training/neighbor_ids.py) on CiteULike cold-item: validation.

thaw's CiteULike settings (configs/citeulike-a.toml) start the id blocks at implicit-ALS factors
and set `cold_id_neighbors`: after training every cold item takes the softmax-weighted mean id
embedding of its nearest warm items by whitened-text cosine, scaled by a weight chosen on
validation. This fits on one fold and prints what validation chose (never the test):

    THAW_DATA=../shared/data HF_HUB_OFFLINE=1 .venv/bin/python bench/cite_cold_ids.py --fold 0
    THAW_DATA=../shared/data HF_HUB_OFFLINE=1 .venv/bin/python bench/cite_cold_ids.py --fold 0 --options '{"cold_id_neighbors": 50}'

The 5-fold test run is `bench/bench_model.py --only citeulike-cold` (docs/benchmarks/model.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_model import snapshot_for, thaw_options  # noqa: E402

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
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--options", default="{}", help="JSON: settings that replace configs/citeulike-a.toml's")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    validate(args.fold, thaw_options("citeulike-a") | json.loads(args.options))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
