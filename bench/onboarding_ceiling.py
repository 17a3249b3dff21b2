"""Validation-only probe: how much can a newcomer's first interactions say on MovieLens at all?

MovieLens 100K, folds 0-4 of onboarding-3, on each fold's cold *validation* users (never the
test) with more than 50 validation items. The target is fixed: each user's items after their
first 40 by time. What a scorer sees varies: the first k of their items by time (k = 3, 10, 40)
or 3 drawn at random from those 40. The scorer is EASE (Steck, WWW 2019), a strong item-item
model, fitted on the training pairs with lambda in {500, 3000, 20000}, alone and blended with
log-popularity; popularity is the reference. If even 40 known items do not lift the later items
far above popularity, the first 3 cannot either. NDCG@20 over all items, the first 40 excluded.
Writes bench/results/onboarding-ceiling.json.

    .venv/bin/python bench/onboarding_ceiling.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from bench_model import snapshot_for  # noqa: E402
from onboarding_signals import first_times, top, validation_histories  # noqa: E402

from thaw.evaluation.metrics import ndcg_at_k  # noqa: E402
from thaw.evaluation.splits import make_split  # noqa: E402

K = 20
KNOWN = 40  # items of each user that may be revealed; the target is what comes after them
MIN_ITEMS = 50
LAMBDAS = (500, 3000, 20000)
BLENDS = (0.1, 0.3, 1.0)  # weight of the max-normalised EASE score added to normalised log-popularity


def ease(train: sp.csr_matrix, lam: float) -> np.ndarray:
    """(n, n) EASE item-item weights with a zero diagonal."""
    gram = (train.T @ train).toarray().astype(np.float64)
    inverse = np.linalg.inv(gram + lam * np.eye(len(gram)))
    weights = -inverse / np.diag(inverse)
    np.fill_diagonal(weights, 0.0)
    return weights


def fold_scores(snapshot, fold: int, first: dict[int, int]) -> dict[str, list[float]]:
    n = snapshot.n_items
    split = make_split(snapshot, "onboarding-3", fold=fold, n_folds=5, seed=0)
    train = sp.csr_matrix((np.ones(len(split.train.user)), (split.train.user, split.train.item)),
                          shape=(snapshot.n_users, n))
    popularity = np.asarray(train.sum(axis=0)).ravel()
    log_pop = np.log1p(popularity) / np.log1p(popularity).max()
    weights = {lam: ease(train, lam) for lam in LAMBDAS}
    rng = np.random.default_rng([fold, 0xCE1])
    results: dict[str, list[float]] = {}
    for items, _ in validation_histories(split, first, n, MIN_ITEMS):
        known, target = items[:KNOWN], items[KNOWN:]
        results.setdefault("popularity", []).append(ndcg_at_k(top(popularity, known), target, K))
        shown = {f"first {k}": known[:k] for k in (3, 10, KNOWN)}
        shown["random 3 of the first 40"] = rng.choice(known, 3, replace=False)
        for label, revealed in shown.items():
            x = np.zeros(n)
            x[revealed] = 1.0
            for lam, w in weights.items():
                scores = x @ w
                results.setdefault(f"EASE {lam}, {label}", []).append(ndcg_at_k(top(scores, known), target, K))
                z = scores / (np.abs(scores).max() + 1e-12)
                for alpha in BLENDS:
                    name = f"log-popularity + {alpha} x EASE {lam}, {label}"
                    results.setdefault(name, []).append(ndcg_at_k(top(log_pop + alpha * z, known), target, K))
    return results


def main() -> None:
    snapshot = snapshot_for("ml-100k", "minilm", 1)
    first = first_times(snapshot)
    folds = []
    for fold in range(5):
        folds.append(fold_scores(snapshot, fold, first))
        print(f"fold {fold}: {len(folds[-1]['popularity'])} users, popularity {np.mean(folds[-1]['popularity']):.4f}",
              flush=True)
    table = {name: {"mean": float(np.mean([np.mean(f[name]) for f in folds])),
                    "folds": [round(float(np.mean(f[name])), 4) for f in folds]} for name in folds[0]}
    out = ROOT / "bench/results/onboarding-ceiling.json"
    out.write_text(json.dumps({"command": "python bench/onboarding_ceiling.py", "split": "validation",
                               "metric": "ndcg@20", "users_per_fold": [len(f["popularity"]) for f in folds],
                               "scores": table}, indent=2) + "\n")
    base = table["popularity"]["mean"]
    print("\n| revealed | best scorer (validation, 5 folds) | NDCG@20 | x popularity |\n|---|---|---|---|")
    print(f"| none | popularity | {base:.4f} | 1.000 |")
    for label in ("first 3", "first 10", f"first {KNOWN}", "random 3 of the first 40"):
        name = max((n for n in table if n.endswith(f", {label}")), key=lambda n: table[n]["mean"])
        print(f"| {label} | {name.rsplit(',', 1)[0]} | {table[name]['mean']:.4f} | {table[name]['mean'] / base:.3f} |")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
