"""Train thaw's model on everything in a store: what `thaw train` and serving's retraining call."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from thaw.data.dataset import EventWeights, Snapshot, build_snapshot
from thaw.models.base import FitData
from thaw.models.thaw_model import ThawConfig, ThawRecommender
from thaw.training.loop import Callback, History

if TYPE_CHECKING:
    from thaw.data.store import Store

log = logging.getLogger(__name__)

StageHook = Callable[[str, int, int], None]
"""Called as hook(stage, done, total) while the snapshot is read and texts are encoded."""


@dataclasses.dataclass(frozen=True)
class Holdout:
    """What `train_from_store` keeps aside for early stopping (never trained on)."""

    item_fraction: float = 0.05  # items held out whole: the cold-item validation
    pair_fraction: float = 0.05  # interactions of warm users held out: the warm validation
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("item_fraction", "pair_fraction"):
            if not 0.0 <= getattr(self, name) < 0.5:
                raise ValueError(f"{name} must be in [0, 0.5), got {getattr(self, name)}")


def train_from_store(
    store: Store,
    config: ThawConfig | None = None,
    *,
    holdout: Holdout | None = None,
    weights: EventWeights | None = None,
    callback: Callback | None = None,
    stage: StageHook | None = None,
) -> tuple[ThawRecommender, History]:
    """Fit a `ThawRecommender` on the store's users, items and events; returns (model, history).

    Texts are encoded once and cached in the store. A small holdout (whole items and some
    interactions) drives early stopping; everything else is trained on.
    """
    config, data, snapshot = prepare_from_store(store, config, holdout=holdout, weights=weights, stage=stage)
    model = ThawRecommender(config)
    model.fit(data, callback=callback, user_ids=snapshot.user_ids, item_ids=snapshot.item_ids)
    return model, model.history_


def prepare_from_store(
    store: Store,
    config: ThawConfig | None = None,
    *,
    holdout: Holdout | None = None,
    weights: EventWeights | None = None,
    stage: StageHook | None = None,
) -> tuple[ThawConfig, FitData, Snapshot]:
    """What `train_from_store` fits on: (config for a deployed model, FitData, snapshot).

    Deterministic given the store and the seeds, so every process of a distributed run builds
    the same data.
    """
    config = config if config is not None else ThawConfig()
    snapshot = build_snapshot(store, progress=(lambda s, n: stage(s, n, n)) if stage else None)
    vectors = _text_vectors(store, snapshot, config, stage)
    data = snapshot_fit_data(snapshot, weights or EventWeights(), holdout or Holdout(), vectors)
    # A deployed model serves warm and cold at once: early stopping watches every view.
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, validation="all"))
    return config, data, snapshot


def snapshot_fit_data(
    snapshot: Snapshot,
    weights: EventWeights,
    holdout: Holdout,
    vectors: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
) -> FitData:
    """FitData of a whole snapshot, minus a seeded holdout used as validation."""
    matrix = snapshot.matrix(weights=weights)  # (n_users, n_items) strongest event per pair
    if matrix.nnz == 0:
        raise ValueError("the store has no events: nothing to train on")
    rng = np.random.default_rng([holdout.seed, 0x7A1])
    coo = matrix.tocoo()
    items_with_events = np.flatnonzero(np.diff(matrix.tocsc().indptr) > 0)
    n_held_items = int(round(holdout.item_fraction * len(items_with_events)))
    held_items = np.zeros(snapshot.n_items, bool)
    if n_held_items and len(items_with_events) > 1:
        held_items[rng.choice(items_with_events, size=n_held_items, replace=False)] = True
    held_pair = held_items[coo.col]
    # Warm-validation pairs: a random share of each remaining pair, keeping every user's last one.
    candidate = ~held_pair & (rng.random(len(coo.row)) < holdout.pair_fraction)
    counts = np.bincount(coo.row[~held_pair & ~candidate], minlength=snapshot.n_users)
    candidate &= counts[coo.row] > 0
    val_mask = held_pair | candidate
    train = _pairs(coo, ~val_mask, matrix.shape)
    validation = _pairs(coo, val_mask, matrix.shape)
    validation.data[:] = 1.0
    text, user_text = vectors
    return FitData(
        train=train,
        items=dataclasses.replace(snapshot.items, text_vectors=text),
        users=dataclasses.replace(snapshot.users, text_vectors=user_text),
        warm_users=np.diff(train.indptr) > 0,
        warm_items=np.diff(train.tocsc().indptr) > 0,
        validation=validation if validation.nnz else None,
        # Their times order each user's first interactions (the onboarding role and the new-user
        # prior learn from them), as the evaluation harness gives them.
        train_events=snapshot.events.of_pairs(coo.row[~val_mask], coo.col[~val_mask], snapshot.n_items),
        seed=holdout.seed,
    )


def _pairs(coo: sp.coo_matrix, mask: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    out = sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=shape, dtype=np.float32)
    out.sort_indices()
    return out


def _text_vectors(
    store: Store, snapshot: Snapshot, config: ThawConfig, stage: StageHook | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Item (and user) text vectors through the store's embedding cache, or (None, None)."""
    if not config.encoder:
        return None, None
    from thaw.encoders import encode_cached, load_encoder

    encoder = load_encoder(config.encoder, threads=config.train.threads)
    items = encode_cached(
        encoder, snapshot.items.documents(), store,
        callback=(lambda done, total: stage("encode items", done, total)) if stage else None,
    )
    users = None
    with_text = [i for i, t in enumerate(snapshot.users.texts) if t]
    if with_text:
        users = np.zeros((snapshot.n_users, encoder.dim), np.float32)
        users[with_text] = encode_cached(
            encoder, [snapshot.users.texts[i] or "" for i in with_text], store,
            callback=(lambda done, total: stage("encode users", done, total)) if stage else None,
        )
    return items, users
