"""Borrowed id parts: a cold item takes the mean id embedding of its nearest warm items by content.

Gantner et al. (ICDM 2010, "Learning attribute-to-feature mappings for cold-start
recommendations") map a new item's attributes to latent factors; their simplest mapping is a
k-nearest-neighbour one: the new item's factors are the similarity-weighted mean of the factors
of the k items most similar to it by attributes. thaw does the same after training: every item
without training interactions gets, as its id part, `weight x sum_j w_j E_j` over its
`cold_id_neighbors` nearest warm items j by cosine of the (whitened) content vectors, with
w = softmax(cosine / cold_id_temperature). It is still one dot product: the user's id part now
meets a collaborative guess for the new item besides its content match.

The weight is chosen on the validation views from `WEIGHTS` (0 included: the borrowed part is
kept only when validation prefers it). Nothing of a cold item's interactions is used: only its
content and the warm items' embeddings.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from thaw.models.tower_data import item_table, user_table
from thaw.training.validation import evaluate, validation_views

if TYPE_CHECKING:
    from thaw.models.two_tower import TwoTower
    from thaw.training.loop import TrainConfig, TrainingData

log = logging.getLogger(__name__)

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
"""Candidate scales of the borrowed id part (x the ratio of content to id score spread)."""

CHUNK = 2048  # cold items per similarity block


def check_settings(config: TrainConfig) -> None:
    """Raise ValueError naming the first borrowed-id setting that is out of range."""
    if config.cold_id_neighbors < 0:
        raise ValueError(f"cold_id_neighbors must be >= 0, got {config.cold_id_neighbors}")
    if config.cold_id_temperature <= 0:
        raise ValueError(f"cold_id_temperature must be > 0, got {config.cold_id_temperature}")


def neighbor_weights(
    query: np.ndarray, reference: np.ndarray, k: int, temperature: float
) -> tuple[np.ndarray, np.ndarray]:
    """(n, k) indices into `reference` and softmax(cosine / temperature) weights of each query row.

    `query` (n, d) and `reference` (m, d) are content vectors; a query row without content (zero
    vector) gets all-zero weights, so it borrows nothing.
    """
    k = min(k, len(reference))
    if k == 0 or len(query) == 0:
        return np.zeros((len(query), k), np.int64), np.zeros((len(query), k), np.float32)
    ref = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    norms = np.linalg.norm(query, axis=1, keepdims=True)
    index = np.zeros((len(query), k), np.int64)
    weights = np.zeros((len(query), k), np.float32)
    for start in range(0, len(query), CHUNK):
        part = slice(start, start + CHUNK)
        sims = (query[part] / np.maximum(norms[part], 1e-12)) @ ref.T  # (chunk, m)
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        w = np.exp((top_sims - top_sims.max(axis=1, keepdims=True)) / temperature)
        index[part], weights[part] = top, w / w.sum(axis=1, keepdims=True)
    weights[norms[:, 0] == 0] = 0.0
    return index, weights


def borrowed_rows(
    id_rows: torch.Tensor, source_content: np.ndarray, content: np.ndarray, k: int, temperature: float
) -> torch.Tensor:
    """(n, id width) neighbour-weighted means of `id_rows` (m, id width) for `content` (n, d).

    `source_content` (m, d) holds the content vectors of the items that own `id_rows`.
    """
    index, weights = neighbor_weights(content, source_content, k, temperature)
    with torch.no_grad():
        return torch.einsum("nk,nkf->nf", torch.from_numpy(weights), id_rows[torch.from_numpy(index)])


def apply(model: TwoTower, data: TrainingData, config: TrainConfig) -> dict[str, Any] | None:
    """Give every cold item a borrowed id part when `config.cold_id_neighbors` and validation agree.

    Changes `model.item_id` in place (the cold items' rows, which training never touches) and
    returns what was chosen (None when off); `weight` 0 means validation preferred no borrowing.
    """
    if not config.cold_id_neighbors or model.item_id is None:
        return None
    sources = np.flatnonzero(data.warm_items)
    cold = np.flatnonzero(~data.warm_items)
    if len(sources) == 0 or len(cold) == 0:
        return {"weight": 0.0, "reason": "no warm items or no cold items"}
    with torch.no_grad():
        content = item_table(model, data.items, np.zeros(data.train.shape[1], bool))[:, : model.dim].numpy()
        rows = borrowed_rows(model.item_id.weight[torch.from_numpy(sources)], content[sources], content[cold],
                             config.cold_id_neighbors, config.cold_id_temperature)
    views = validation_views(data, include_warm=config.validation == "all", seed=config.seed)
    if not views:
        return {"weight": 0.0, "reason": "no validation pairs to choose the weight on"}
    scale = _spread_ratio(model, data, rows, cold, views, config)
    scored = dataclasses.replace(data, warm_items=np.ones_like(data.warm_items))
    index = torch.from_numpy(cold)
    curve = []
    for weight in WEIGHTS:
        with torch.no_grad():
            model.item_id.weight[index] = weight * scale * rows
        curve.append(float(np.mean(list(evaluate(model, scored, config, views).values()))))
    best = int(np.argmax(curve))  # ties: the smaller weight (0 first)
    with torch.no_grad():
        model.item_id.weight[index] = WEIGHTS[best] * scale * rows
    log.info("borrowed id parts: weight %s (validation %s)", WEIGHTS[best], curve)
    return {"weight": WEIGHTS[best] * scale, "relative_weight": WEIGHTS[best], "scale": scale,
            "neighbors": config.cold_id_neighbors, "temperature": config.cold_id_temperature,
            "curve": dict(zip((str(w) for w in WEIGHTS), curve, strict=True)), "items": len(cold)}


def _spread_ratio(
    model: TwoTower, data: TrainingData, rows: torch.Tensor, cold: np.ndarray, views: list[Any],
    config: TrainConfig,
) -> float:
    """Mean |content score| / mean |borrowed score| over the first view's users and cold items.

    Puts the weights of `WEIGHTS` on a scale where 1 means "as loud as the content match".
    """
    view = views[0]
    with torch.no_grad():
        items = item_table(model, data.items, data.warm_items)
        users = user_table(model, items, view.history, data.users, view.users, view.users,
                           data.warm_users[view.users], max_history=config.max_eval_history)
        content = users @ items[torch.from_numpy(cold)].T  # (n_users, n_cold)
        borrowed = users @ _place(model, rows).T
    ratio = float(content.abs().mean() / borrowed.abs().mean().clamp_min(1e-12))
    return ratio if np.isfinite(ratio) else 0.0


def _place(model: TwoTower, rows: torch.Tensor) -> torch.Tensor:
    """Id-table rows (n, id width) placed in item-vector coordinates (n, width + 1)."""
    if model.id_dim:
        return torch.cat([torch.zeros(len(rows), model.dim), rows], dim=1)
    return rows


def borrowed_part(
    model: TwoTower, items: torch.Tensor, item_vectors: torch.Tensor, sources: np.ndarray, info: dict[str, Any] | None
) -> torch.Tensor:
    """The borrowed id part (n, width + 1) of new items whose content-only vectors are `items`.

    For serving an item added after training: `item_vectors` (n_catalogue, width + 1) are the
    fitted item vectors, `sources` the (n_catalogue,) mask of items with a trained id part, and
    `info` the fit's `history.cold_ids`. Zeros when borrowing is off or was not kept.
    """
    out = torch.zeros(len(items), model.width + 1)
    if not info or not info.get("weight") or model.item_id is None or len(items) == 0:
        return out
    rows = np.flatnonzero(sources)
    with torch.no_grad():
        table = model.item_id.weight[torch.from_numpy(rows)]
        content = item_vectors[torch.from_numpy(rows), : model.dim].numpy()
        borrowed = borrowed_rows(table, content, items[:, : model.dim].numpy(), info["neighbors"], info["temperature"])
        return _place(model, info["weight"] * borrowed)
