"""Validation-only experiments on CiteULike cold-item scoring over the whitened MiniLM space.

Untrained thaw on cold items is mean pooling of whitened text vectors (a dot product). This
script scores the cold-item validation view of one fold with variants of that rule (pooling,
item-side priors, hubness corrections) and prints Recall@20 for each. It never reads test pairs.

    THAW_DATA=../shared/data HF_HUB_OFFLINE=1 .venv/bin/python bench/cite_scoring_experiments.py --fold 0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_model import snapshot_for  # noqa: E402
from thaw.evaluation.harness import fit_data  # noqa: E402
from thaw.evaluation.splits import make_split  # noqa: E402
from thaw.models.tower_data import whitening  # noqa: E402
from thaw.training.validation import ranking_metric  # noqa: E402


def cold_view(data):  # type: ignore[no-untyped-def]
    """(users, history rows, relevant rows, candidates) of the cold-item validation view."""
    validation = sp.csr_matrix(data.validation, dtype=np.float32)
    cold_cols = sp.diags((~data.warm_items).astype(np.float32))
    warm_rows = sp.diags(data.warm_users.astype(np.float32))
    on_cold = sp.csr_matrix(warm_rows @ validation @ cold_cols)
    on_cold.eliminate_zeros()
    users = np.flatnonzero(np.diff(on_cold.indptr) > 0)
    candidates = np.flatnonzero(~data.warm_items)
    return users, data.train.tocsr()[users], on_cold[users][:, candidates].tocsr(), candidates


def recall(scores: np.ndarray, relevant: sp.csr_matrix) -> float:
    return ranking_metric(scores, relevant, 20, "recall")


def zscore(scores: np.ndarray) -> np.ndarray:
    return (scores - scores.mean(axis=1, keepdims=True)) / (scores.std(axis=1, keepdims=True) + 1e-9)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--transfer", action="store_true", help="only the warm-neighbour CF transfer variants")
    parser.add_argument("--als", action="store_true", help="only the warm-neighbour ALS-factor variants")
    args = parser.parse_args()
    snapshot = snapshot_for("citeulike-a", "minilm", threads=1)
    split = make_split(snapshot, "cold-item", fold=args.fold)
    data = fit_data(snapshot, split, seed=0)
    x = np.asarray(data.items.text_vectors, np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    warm = data.warm_items
    users, history, relevant, candidates = cold_view(data)
    out: dict[str, float] = {}

    def report(name: str, scores: np.ndarray) -> None:
        out[name] = round(recall(scores, relevant), 4)
        print(json.dumps({"fold": args.fold, "variant": name, "recall@20": out[name]}), flush=True)

    if args.als:
        als_transfer(data, x, users, history, relevant, candidates, report)
        return 0
    if args.transfer:
        transfer(data, x, users, history, relevant, candidates, report)
        return 0
    for exponent in (0.5,):
        v, weights, base = content_scores(x, warm, history, candidates, exponent)
        report(f"mean-pool w{exponent}", base)
        vn = v / np.linalg.norm(v, axis=1, keepdims=True)
        pooled_n = np.asarray(weights @ vn)
        report(f"mean-pool cosine w{exponent}", pooled_n @ vn[candidates].T)

        # Item prior: ridge from whitened text to log(1 + training count) over warm items.
        counts = np.asarray(data.train.tocsc().sum(axis=0)).ravel()
        target = np.log1p(counts[warm])
        vw = v[warm]
        for lam in (10.0, 100.0):
            coef = np.linalg.solve(vw.T @ vw + lam * np.eye(v.shape[1]), vw.T @ (target - target.mean()))
            prior = v[candidates] @ coef
            prior = (prior - prior.mean()) / (prior.std() + 1e-9)
            zb = zscore(base)
            for beta in (-0.2, 0.1, 0.2, 0.3, 0.5):
                report(f"z(mean)+{beta}*pop-ridge lam{lam}", zb + beta * prior[None, :])

        # Hubness (CSLS-like): subtract each candidate's mean similarity to all warm users' profiles.
        all_users = np.flatnonzero(np.diff(data.train.tocsr().indptr) > 0)
        w_all = sp.csr_matrix(data.train.tocsr()[all_users], dtype=np.float32)
        s_all = np.asarray(w_all.sum(axis=1)).ravel()
        prof_all = np.asarray(sp.diags(1.0 / s_all) @ w_all @ v)
        hub_scores = prof_all @ v[candidates].T  # (n_all_users, n_candidates)
        for k in (50, 200):
            top = -np.partition(-hub_scores, k - 1, axis=0)[:k]
            hub = top.mean(axis=0)
            for gamma in (0.25, 0.5, 1.0):
                report(f"csls k{k} g{gamma}", base - gamma * hub[None, :])
        hub_mean = hub_scores.mean(axis=0)
        for gamma in (0.5, 1.0):
            report(f"minus mean-user g{gamma}", base - gamma * hub_mean[None, :])

        # Pooling of per-history-item similarities: log-mean-exp (tau) and top-m mean, fused.
        started = time.perf_counter()
        sims_cache = v @ v[candidates].T  # (n_items, n_candidates); rows of warm items are used
        lse = {tau: np.zeros_like(base) for tau in (0.05, 0.1, 0.2)}
        topm = {m: np.zeros_like(base) for m in (1, 3, 5)}
        for row in range(len(users)):
            items = history.indices[history.indptr[row] : history.indptr[row + 1]]
            s = sims_cache[items]  # (n_h, n_candidates)
            scale = np.abs(base[row]).mean() + 1e-9
            for tau in lse:
                t = tau * np.abs(s).mean()
                mx = s.max(axis=0)
                lse[tau][row] = mx + t * np.log(np.exp((s - mx) / t).mean(axis=0))
            for m in topm:
                mm = min(m, len(items))
                topm[m][row] = -np.partition(-s, mm - 1, axis=0)[:mm].mean(axis=0)
            del scale
        print(f"# per-item sims in {time.perf_counter() - started:.0f}s", flush=True)
        zb = zscore(base)
        for tau, scores in lse.items():
            report(f"lse tau{tau}", scores)
            for alpha in (0.3, 0.5):
                report(f"z(mean)+{alpha}z(lse tau{tau})", zb + alpha * zscore(scores))
        for m, scores in topm.items():
            report(f"top{m}", scores)
            for alpha in (0.2, 0.5):
                report(f"z(mean)+{alpha}z(top{m})", zb + alpha * zscore(scores))
    return 0


def content_scores(x, warm, history, candidates, exponent):  # type: ignore[no-untyped-def]
    """(whitened vectors, row-mean history weights, mean-pool scores of the view's users on candidates)."""
    mean, transform = whitening(x[warm], exponent)
    v = (x - mean) @ transform  # (n_items, d)
    weights = sp.csr_matrix(history, dtype=np.float32)
    sums = np.asarray(weights.sum(axis=1)).ravel()
    weights = sp.diags(1.0 / np.maximum(sums, 1e-12)) @ weights
    return v, weights, np.asarray(weights @ v) @ v[candidates].T


def transfer(data, x, users, history, relevant, candidates, report) -> None:  # type: ignore[no-untyped-def]
    """A cold item borrows the collaborative scores of its nearest warm items by content.

    score(u, i) = sum_j w_ij cf(u, j) over the K warm items j closest to i (whitened cosine),
    w = softmax(sim / tau) over them; cf(u, j) = cosine item-item co-occurrence of j with u's
    history (training pairs only). Fused with the content score by z-scores.
    """
    warm = data.warm_items
    v, weights, base = content_scores(x, warm, history, candidates, 0.5)
    report("mean-pool w0.5", base)
    vn = v / np.linalg.norm(v, axis=1, keepdims=True)
    warm_index = np.flatnonzero(warm)
    sims = vn[candidates] @ vn[warm_index].T  # (n_cold, n_warm)
    a = sp.csr_matrix(data.train, dtype=np.float32)
    a.data[:] = 1.0
    counts = np.asarray(a.sum(axis=0)).ravel()
    a_hat = a @ sp.diags(1.0 / np.sqrt(np.maximum(counts, 1.0)))  # column-normalised
    zb = zscore(base)
    for k in (20, 100):
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        rows = np.repeat(np.arange(len(candidates)), k)
        top_sims = np.take_along_axis(sims, top, axis=1)
        for tau in (0.05, 0.2):
            w = np.exp((top_sims - top_sims.max(axis=1, keepdims=True)) / tau)
            w /= w.sum(axis=1, keepdims=True)
            w_mat = sp.csr_matrix((w.ravel(), (rows, warm_index[top.ravel()])), shape=(len(candidates), a.shape[1]))
            # cf(u, .) W^T = h_u A_hat^T A_hat W^T: (n_users, n_cold)
            spread = a_hat @ w_mat.T.tocsc()  # (n_all_users, n_cold)
            cf = np.asarray((weights @ (a_hat.T @ spread)).todense() if sp.issparse(spread) else weights @ (a_hat.T @ spread))
            report(f"transfer k{k} tau{tau}", cf)
            zc = zscore(cf)
            for alpha in (0.25, 0.5, 1.0):
                report(f"z(mean)+{alpha}z(transfer k{k} tau{tau})", zb + alpha * zc)


def als_transfer(data, x, users, history, relevant, candidates, report) -> None:  # type: ignore[no-untyped-def]
    """Gantner et al.'s map-knn in a dot product: a cold item's ALS factors are the softmax-weighted
    mean of its K nearest warm items' factors (whitened-text cosine); score = content + alpha * ALS."""
    from thaw.models.als import ALSRecommender

    warm = data.warm_items
    v, weights, base = content_scores(x, warm, history, candidates, 0.5)
    report("mean-pool w0.5", base)
    started = time.perf_counter()
    als = ALSRecommender(n_factors=200, regularization=10.0, alpha=10.0).fit(data)
    print(f"# als in {time.perf_counter() - started:.0f}s", flush=True)
    p_users = np.asarray(als.model_.user_factors, np.float32)[users]
    q = np.asarray(als.model_.item_factors, np.float32)
    vn = v / np.linalg.norm(v, axis=1, keepdims=True)
    warm_index = np.flatnonzero(warm)
    sims = vn[candidates] @ vn[warm_index].T  # (n_cold, n_warm)
    zb = zscore(base)
    base_scale = np.abs(base).mean()
    for k in (10, 20, 50):
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        for tau in (0.02, 0.05, 0.1):
            w = np.exp((top_sims - top_sims.max(axis=1, keepdims=True)) / tau)
            w /= w.sum(axis=1, keepdims=True)
            q_cold = np.einsum("ck,ckf->cf", w, q[warm_index[top]])  # (n_cold, factors)
            cf = p_users @ q_cold.T
            report(f"als-knn k{k} tau{tau}", cf)
            zc = zscore(cf)
            cf_scale = np.abs(cf).mean()
            for alpha in (0.15, 0.25, 0.35):
                report(f"z(mean)+{alpha}z(als-knn k{k} tau{tau})", zb + alpha * zc)
            for alpha in (0.15, 0.25, 0.35, 0.5):
                # a global weight, as a dot product can carry it (no per-user z-scores)
                report(f"mean+{alpha}*als-knn k{k} tau{tau} (global)", base + alpha * (base_scale / cf_scale) * cf)


if __name__ == "__main__":
    raise SystemExit(main())
