"""Check thaw's new-user popularity-prior weights on validation pairs only (never a test split).

    HF_HUB_OFFLINE=1 THAW_DATA=../shared/data .venv/bin/python bench/choose_prior_weights.py --folds 0,1,2,3,4

For each cold-user fold, thaw is fitted once with its defaults: the fit chooses the weights on
training users replayed as new ones (models/priors.py) and keeps that choice's curves. Its
validation new users are then scored as the harness scores test users: with no history
(cold-user) and with k validation pairs revealed (the rest are the held-out items): their first k
by time (onboarding-k), or with `--reveal random` k drawn at random (onboarding-k-random). Prints
the weights the fit chose (a third when the prior adapts to what a history holds), its curves,
and NDCG@20 of thaw as fitted ("chosen"), of its towers + w * log(1 + training count) for each
fixed w, and of popularity alone, per fold and on average: how close the fit's choice comes to the
best weight on validation.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_model import snapshot_for  # noqa: E402
from thaw.data.dataset import Snapshot  # noqa: E402
from thaw.evaluation.harness import fit_data  # noqa: E402
from thaw.evaluation.splits import interaction_pairs, make_split  # noqa: E402
from thaw.models.base import FitData  # noqa: E402
from thaw.models.priors import log_popularity  # noqa: E402
from thaw.models.thaw_model import create  # noqa: E402
from thaw.training.validation import ranking_metric  # noqa: E402

WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0)


def new_user_views(
    snapshot: Snapshot, data: FitData, k: int, seed: int, reveal: str = "first"
) -> dict[str, tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix]]:
    """(users, scoring-time history, held-out items) of validation new users, no history and k revealed."""
    n_users, n_items = data.train.shape
    validation = sp.csr_matrix(sp.diags((~data.warm_users).astype(np.float32)) @ data.validation)
    validation.eliminate_zeros()
    users = np.flatnonzero(np.diff(validation.indptr) > 0)
    pairs, times = interaction_pairs(snapshot.events, n_items)
    keys = pairs.keys(n_items)  # sorted, with each pair's first-event time in `times`
    rng = np.random.default_rng(seed)
    revealed, rest = sp.lil_matrix((n_users, n_items), dtype=np.float32), validation.tolil()
    onboarding = []
    for user in users:
        items = validation.indices[validation.indptr[user] : validation.indptr[user + 1]]
        if len(items) <= k:
            continue
        first = times[np.searchsorted(keys, user * n_items + items.astype(np.int64))]
        if reveal == "random":
            shown = items[rng.permutation(len(items))[:k]]
        else:
            shown = items[np.lexsort((rng.random(len(items)), first))[:k]]  # ties broken at random
        revealed[user, shown] = 1.0
        rest[user, shown] = 0.0
        onboarding.append(user)
    rest_csr = rest.tocsr()
    rest_csr.eliminate_zeros()
    chosen = np.array(onboarding, np.int64)
    empty = sp.csr_matrix((len(users), n_items), dtype=np.float32)
    return {
        "cold-user": (users, empty, validation[users]),
        f"onboarding-{k}{'-random' if reveal == 'random' else ''}": (chosen, revealed.tocsr()[chosen], rest_csr[chosen]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k", choices=["ml-100k", "citeulike-a"])
    parser.add_argument("--folds", default="0,1,2,3,4")
    parser.add_argument("--k", type=int, default=3, help="onboarding reveal count")
    parser.add_argument("--reveal", default="first", choices=["first", "random"],
                        help="which k validation pairs an onboarding user reveals")
    parser.add_argument("--fixed", action="store_true",
                        help="one weight for any history (adaptive_prior = false), as thaw had before")
    parser.add_argument("--encoder", default="minilm")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    snapshot = snapshot_for(args.dataset, args.encoder, threads=1)
    table: dict[str, dict[str, list[float]]] = {}
    for fold in (int(f) for f in args.folds.split(",")):
        split = make_split(snapshot, "cold-user", fold=fold)
        data = fit_data(snapshot, split, seed=0)
        model = create(seed=0, eval_metric="ndcg", adaptive_prior=not args.fixed).fit(data)  # as bench_model fits it
        chosen = model.model_config_.prior_weights
        opening_range = model.model_config_.opening_range
        print(json.dumps({"fold": fold, "chosen": chosen, "opening_range": opening_range, "fit_curves": {
            name: {str(w): round(v, 4) for w, v in curve.items()} for name, curve in model.prior_curves_.items()}}),
            flush=True)
        prior = log_popularity(data.train).astype(np.float64)
        towers_only = copy.copy(model)  # the same fitted towers with every prior weight 0
        towers_only.model_config_ = dataclasses.replace(model.model_config_, prior_weights=(0.0, 0.0))
        for view, (users, history, relevant) in new_user_views(snapshot, data, args.k, fold, args.reveal).items():
            towers = towers_only.score(users, history).astype(np.float64)
            rows = table.setdefault(view, {})
            variants = [("popularity", np.tile(prior, (len(users), 1))), ("chosen", model.score(users, history))]
            for label, values in variants + [(f"w={w}", towers + w * prior) for w in WEIGHTS]:
                values = values.copy()
                values[history.nonzero()] = -np.inf
                rows.setdefault(label, []).append(ranking_metric(values, relevant, 20, "ndcg"))
    lines = []
    for view, rows in table.items():
        for label, values in rows.items():
            lines.append({"view": view, "variant": label, "ndcg@20": [round(v, 4) for v in values],
                          "mean": round(float(np.mean(values)), 4)})
            print(json.dumps(lines[-1]))
    name = f"prior-weights-{args.dataset}-{args.reveal}{'-fixed' if args.fixed else ''}.json"
    out = Path(__file__).resolve().parent / "results" / name
    out.write_text(json.dumps({"command": "python bench/choose_prior_weights.py " + " ".join(argv or sys.argv[1:]),
                               "split": "validation", "rows": lines}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
