"""Retraining on the live store for POST /admin/train, and the evaluation both models face.

The new model is fitted on the store minus a seeded holdout; the live model and the new one are
then scored on that same holdout (Recall@20 over the whole catalogue, each user's training items
excluded). The live model may have trained on the holdout, which can only favour keeping it:
a swap happens only when the new model is at least as good under conditions that favour the old.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from thaw.data.dataset import EventWeights, build_snapshot
from thaw.data.store import Store
from thaw.models.base import EmbeddingModel, FitData
from thaw.serving.models import TrainOutcome

EVAL_K = 20
EVAL_USERS = 2000  # validation users scored (a seeded sample keeps evaluation to seconds)


def metrics_of(model: Any) -> dict[str, float]:
    """The validation metrics a fitted or loaded ThawRecommender carries (its best epoch)."""
    history = getattr(model, "history_", None)
    if history is None:
        return {}
    out: dict[str, float] = {}
    best = next((e for e in history.epochs if e.get("epoch") == history.best_epoch), None)
    for key, value in (best or {}).items():
        if key not in ("epoch", "loss", "elapsed") and isinstance(value, (int, float)) and value == value:
            out[key] = float(value)
    if history.best_metric is not None:
        out[history.metric] = float(history.best_metric)
    return out


def recall_at_k(
    model: EmbeddingModel, data: FitData, user_ids: list[str], item_ids: list[str], *, k: int = EVAL_K, seed: int = 0
) -> float:
    """Mean Recall@k of `model` on `data.validation`, ranking all items minus training items."""
    if data.validation is None:
        raise ValueError("no validation interactions to evaluate on")
    item_vectors = np.asarray(model.encode_items(data.items, item_ids), np.float32)  # (n_items, d)
    users = np.flatnonzero(np.diff(data.validation.indptr) > 0)
    if len(users) > EVAL_USERS:
        users = np.sort(np.random.default_rng(seed).choice(users, EVAL_USERS, replace=False))
    recalls = []
    for start in range(0, len(users), 256):
        chunk = users[start : start + 256]
        content = dataclasses.replace(
            data.users,
            attributes=[data.users.attributes[u] for u in chunk],
            texts=[data.users.texts[u] for u in chunk],
            text_vectors=None if data.users.text_vectors is None else data.users.text_vectors[chunk],
        )
        history = data.train[chunk]
        vectors = np.asarray(model.encode_users(content, [user_ids[u] for u in chunk], history, item_vectors))
        scores = vectors @ item_vectors.T  # (chunk, n_items)
        scores[history.nonzero()] = -np.inf
        kk = min(k, scores.shape[1])
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        for row, user in enumerate(chunk):
            relevant = data.validation.indices[data.validation.indptr[user] : data.validation.indptr[user + 1]]
            recalls.append(len(np.intersect1d(top[row], relevant)) / min(len(relevant), k))
    return float(np.mean(recalls))


def make_trainer(encoder_spec: str, threads: int = 1, base_config: Any = None) -> Callable[[Store, Callable[[dict[str, Any]], None]], TrainOutcome]:
    """A trainer for ModelRegistry: fits a ThawRecommender with `base_config` (default ThawConfig)."""

    def trainer(store: Store, progress: Callable[[dict[str, Any]], None]) -> TrainOutcome:
        from thaw.encoders import encode_cached, load_encoder
        from thaw.models.thaw_model import ThawConfig, ThawRecommender
        from thaw.training import checkpoint
        from thaw.training.train import Holdout, snapshot_fit_data

        config = base_config if base_config is not None else ThawConfig(encoder=encoder_spec)
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, threads=threads, validation="all"))
        snapshot = build_snapshot(store)
        encoder = load_encoder(config.encoder or encoder_spec, threads=threads)
        text = encode_cached(encoder, snapshot.items.documents(), store)
        user_text = None
        with_text = [i for i, t in enumerate(snapshot.users.texts) if t]
        if with_text:
            user_text = np.zeros((snapshot.n_users, encoder.dim), np.float32)
            user_text[with_text] = encode_cached(encoder, [snapshot.users.texts[i] or "" for i in with_text], store)
        data = snapshot_fit_data(snapshot, EventWeights(), Holdout(), (text, user_text))

        def on_epoch(report: Any) -> None:
            values = dataclasses.asdict(report) if dataclasses.is_dataclass(report) else dict(report)
            progress({k: v for k, v in values.items() if isinstance(v, (int, float, str)) or v is None})

        model = ThawRecommender(config).fit(
            data, callback=on_epoch, user_ids=snapshot.user_ids, item_ids=snapshot.item_ids
        )
        # Someone deleted while this model trained must not come back with it (docs/privacy.md).
        alive = {user.id for user in store.get_users(snapshot.user_ids)}
        model.forget_users([u for u in snapshot.user_ids if u not in alive])

        def evaluate(candidate: EmbeddingModel) -> dict[str, float]:
            return {f"recall@{EVAL_K}": recall_at_k(candidate, data, snapshot.user_ids, snapshot.item_ids)}

        return TrainOutcome(model, metrics_of(model), evaluate=evaluate, save=lambda path: checkpoint.save(model, path))

    return trainer
