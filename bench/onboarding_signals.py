"""Validation-only probe: do time or session order say more about a newcomer than popularity does?

MovieLens 100K onboarding-3, folds 0-4, on each fold's cold *validation* users (never the test):
each reveals their first 3 items by time and the rest is the target, as onboarding-3 tests. Scored
with training pairs only:

- popularity over all training pairs (the baseline), and over training pairs up to the moment of
  the newcomer's third reveal ("past"), within a window of the last 7-120 days, or decayed with a
  half-life of 7-60 days (what a live server knows as "trending");
- log-popularity plus alpha x transitions: how often training users interacted with an item
  within w steps (by time) of a revealed one (w = 5, 20, 50; w = all is plain co-occurrence).

NDCG@20 over all items, revealed items excluded. Writes bench/results/onboarding-signals.json.

    .venv/bin/python bench/onboarding_signals.py
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

from thaw.evaluation.metrics import ndcg_at_k  # noqa: E402
from thaw.evaluation.splits import make_split  # noqa: E402

DAY = 86400
K = 20
REVEAL = 3
WINDOWS = (7, 14, 30, 60, 120)
HALF_LIVES = (7, 14, 30, 60)
STEPS = (5, 20, 50, None)  # None: the whole history
ALPHAS = (0.1, 0.3, 1.0, 3.0)


def first_times(snapshot) -> dict[int, int]:
    """Key user * n_items + item -> the pair's first event time."""
    events = snapshot.events
    keys = events.user.astype(np.int64) * snapshot.n_items + events.item
    first: dict[int, int] = {}
    for key, when in zip(keys.tolist(), events.time.tolist(), strict=True):
        first.setdefault(key, when)
    return first


def transitions(users: np.ndarray, items: np.ndarray, times: np.ndarray, steps: int | None, n: int) -> sp.csr_matrix:
    """(n, n) symmetric counts of item pairs at most `steps` apart in a user's time order."""
    order = np.lexsort((np.arange(len(items)), times, users))
    u, i = users[order], items[order]
    if steps is None:
        m = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(int(u.max()) + 1, n))
        return sp.csr_matrix(m.T @ m)
    rows, cols = [], []
    for d in range(1, steps + 1):
        same = u[d:] == u[:-d]
        rows += [i[:-d][same], i[d:][same]]
        cols += [i[d:][same], i[:-d][same]]
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(n, n))


def top(scores: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    scores = scores.astype(np.float64, copy=True)
    scores[excluded] = -np.inf
    best = np.argpartition(-scores, K)[:K]
    return best[np.argsort(-scores[best], kind="stable")]


def validation_histories(split, first: dict[int, int], n_items: int, more_than: int):
    """(items, times) of each cold validation user with more than `more_than` items, in time order."""
    val = split.val.subset(split.cold_users[split.val.user])
    val_time = np.array([first[k] for k in val.keys(n_items).tolist()])
    for user in np.unique(val.user):
        mine = val.user == user
        items, when = val.item[mine], val_time[mine]
        if len(items) > more_than:
            order = np.lexsort((np.arange(len(items)), when))
            yield items[order], when[order]


def fold_scores(snapshot, fold: int, first: dict[int, int]) -> dict[str, float]:
    n_items = snapshot.n_items
    split = make_split(snapshot, f"onboarding-{REVEAL}", fold=fold, n_folds=5, seed=0)
    train = split.train
    train_time = np.array([first[k] for k in train.keys(n_items).tolist()])
    popularity = np.bincount(train.item, minlength=n_items).astype(np.float64)
    log_pop = np.log1p(popularity) / np.log1p(popularity).max()
    steps = {s: transitions(train.user, train.item, train_time, s, n_items) for s in STEPS}
    results: dict[str, list[float]] = {}
    for items, when in validation_histories(split, first, n_items, REVEAL):
        revealed, rest = items[:REVEAL], items[REVEAL:]
        now = when[REVEAL - 1]
        past = train_time <= now
        candidates = {"popularity": popularity,
                      "popularity, past only": np.bincount(train.item[past], minlength=n_items)}
        for days in WINDOWS:
            recent = past & (train_time > now - days * DAY)
            candidates[f"popularity, last {days} days"] = np.bincount(train.item[recent], minlength=n_items) + 1e-3 * popularity
        for days in HALF_LIVES:
            decay = np.where(past, 0.5 ** ((now - train_time) / (days * DAY)), 0.0)
            candidates[f"popularity, half-life {days} days"] = np.bincount(train.item, decay, n_items) + 1e-6 * popularity
        for s, matrix in steps.items():
            signal = np.asarray(matrix[revealed].sum(axis=0)).ravel() / np.sqrt(np.maximum(popularity, 1))
            signal /= signal.max() + 1e-9
            for alpha in ALPHAS:
                name = f"log-popularity + {alpha} x {'co-occurrence' if s is None else f'within {s} steps'}"
                candidates[name] = log_pop + alpha * signal
        for name, scores in candidates.items():
            results.setdefault(name, []).append(ndcg_at_k(top(scores, revealed), rest, K))
    return {name: float(np.mean(values)) for name, values in results.items()}


def main() -> None:
    snapshot = snapshot_for("ml-100k", "minilm", 1)
    first = first_times(snapshot)
    folds = []
    for fold in range(5):
        folds.append(fold_scores(snapshot, fold, first))
        print(f"fold {fold}: popularity {folds[-1]['popularity']:.4f}", flush=True)
    names = list(folds[0])
    table = {n: {"mean": float(np.mean([f[n] for f in folds])), "folds": [round(f[n], 4) for f in folds]} for n in names}
    out = ROOT / "bench/results/onboarding-signals.json"
    out.write_text(json.dumps({"command": "python bench/onboarding_signals.py", "split": "validation",
                               "metric": "ndcg@20", "scores": table}, indent=2) + "\n")
    base = table["popularity"]["mean"]
    print(f"\n| signal (validation, 5 folds) | NDCG@20 | x popularity |\n|---|---|---|")
    for name in sorted(names, key=lambda n: -table[n]["mean"]):
        print(f"| {name} | {table[name]['mean']:.4f} | {table[name]['mean'] / base:.3f} |")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
