"""Generated feedback: plausible first interactions for new items, used to warm them up.

After training, every item without training interactions (a cold item) gets the `n` warm users
whose scores against its content-only (generated) vector are highest. Each generated pair gets a
*calibrated* confidence: the share of real interactions found at that rank when the same
generation is run on the validation's held-out items, whose real interactions are known
(made non-increasing in the rank by isotonic regression). Nothing of the test data is used.

The pairs then warm the item up as training signal for its id embedding: the id rows of the cold
items are trained, everything else frozen, so that each user who was generated for an item ranks
it high among the cold items (a softmax over the cold items, each pair weighted by its
confidence). Early stopping on the validation views decides how far (epoch 0 = no feedback):
generated feedback can only be kept where it helps on validation. The same pairs, written to the
store as `generated` events (`thaw.data.generated`), are the new items' exposure candidates.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch

from thaw.models.tower_data import item_table, user_table
from thaw.training import neighbor_ids
from thaw.training.validation import evaluate, validation_views

if TYPE_CHECKING:
    from thaw.models.two_tower import TwoTower
    from thaw.training.loop import TrainConfig, TrainingData

log = logging.getLogger(__name__)

USER_CHUNK = 2048  # users per forward pass of the warm-up loss


def check_settings(config: TrainConfig) -> None:
    """Raise ValueError naming the first generated-feedback setting that is out of range."""
    if config.generated_feedback < 0:
        raise ValueError(f"generated_feedback must be >= 0, got {config.generated_feedback}")
    if config.feedback_epochs < 1:
        raise ValueError(f"feedback_epochs must be >= 1, got {config.feedback_epochs}")
    if config.feedback_lr <= 0 or config.feedback_l2 < 0:
        raise ValueError("feedback_lr must be > 0 and feedback_l2 >= 0")


@dataclass(frozen=True)
class GeneratedFeedback:
    """Generated (user, item) pairs by training row, with their rank and calibrated confidence."""

    users: np.ndarray  # (n,) int64 user rows
    items: np.ndarray  # (n,) int64 item rows
    rank: np.ndarray  # (n,) int64, 1 = the item's best-scoring user
    confidence: np.ndarray  # (n,) float32 in (0, 1]
    calibrated: bool  # False when no held-out item was there to calibrate on (confidence 1)

    def __len__(self) -> int:
        return len(self.users)

    def matrix(self, n_users: int, n_items: int) -> sp.csr_matrix:
        """(n_users, n_items) confidences of the generated pairs."""
        return sp.csr_matrix((self.confidence, (self.users, self.items)), shape=(n_users, n_items))


def warm_users(data: TrainingData) -> np.ndarray:
    """Rows of the users a generated interaction may name: warm users with training pairs."""
    return np.flatnonzero(data.warm_users & (np.diff(data.train.indptr) > 0))


@torch.no_grad()
def user_vectors(model: TwoTower, data: TrainingData, users: np.ndarray, config: TrainConfig) -> torch.Tensor:
    """Vectors of warm `users` as scoring sees them: full training history and id part."""
    items = item_table(model, data.items, data.warm_items)
    return user_table(
        model, items, data.train[users], data.users, users, users, np.ones(len(users), bool),
        max_history=config.max_eval_history,
    )


def top_users(scores: torch.Tensor, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_items, n) best user columns per item row of `scores` (n_items, n_users), best first."""
    n = min(n, scores.shape[1])
    values, index = torch.topk(scores, n, dim=1)
    return index.numpy(), values.numpy()


def calibrate(top: np.ndarray, scores: np.ndarray, truth: sp.csr_matrix) -> Any:
    """A map from a generated pair's score to the probability that it is a real interaction.

    Fitted on held-out items: `top` (m, n) are their generated user columns, `scores` (m, n) the
    scores of those pairs and `truth` (m, n_users) their real interactions. Isotonic regression
    (non-decreasing in the score), so a pair's confidence is the share of real pairs among
    held-out pairs that scored like it. None when there is nothing to fit on.
    """
    if top.shape[0] == 0 or truth.nnz == 0:
        return None
    from sklearn.isotonic import IsotonicRegression

    hits = np.take_along_axis(truth.toarray() > 0, top, axis=1)  # (m, n)
    model = IsotonicRegression(increasing=True, y_min=1e-3, y_max=1.0, out_of_bounds="clip")
    return model.fit(scores.ravel().astype(np.float64), hits.ravel().astype(np.float64))


def generate(model: TwoTower, data: TrainingData, n: int, config: TrainConfig) -> GeneratedFeedback:
    """The `n` best warm users of every cold item, with confidences calibrated on validation."""
    users = warm_users(data)
    cold = np.flatnonzero(~data.warm_items)
    if len(users) == 0 or len(cold) == 0 or n == 0:
        empty = np.zeros(0, np.int64)
        return GeneratedFeedback(empty, empty, empty, np.zeros(0, np.float32), False)
    vectors = user_vectors(model, data, users, config)  # (U, w+1)
    with torch.no_grad():
        generated = item_table(model, data.items, np.zeros(data.train.shape[1], bool))[torch.from_numpy(cold)]
        top, scores = top_users(generated @ vectors.T, n)  # (n_cold, n) columns into `users`
    confidence, calibrated = np.ones(top.size, np.float32), False
    if data.validation is not None:
        truth = sp.csr_matrix(data.validation.T)[cold][:, users]  # (n_cold, U) held-out pairs
        held = np.flatnonzero(np.diff(truth.indptr) > 0)
        fitted = calibrate(top[held], scores[held], truth[held])
        if fitted is not None:
            confidence, calibrated = fitted.predict(scores.ravel().astype(np.float64)), True
    k = top.shape[1]
    return GeneratedFeedback(
        users=users[top.ravel()].astype(np.int64),
        items=np.repeat(cold, k).astype(np.int64),
        rank=np.tile(np.arange(1, k + 1), len(cold)).astype(np.int64),
        confidence=np.asarray(confidence, np.float32),
        calibrated=calibrated,
    )


def _id_vectors(model: TwoTower, rows: torch.Tensor) -> torch.Tensor:
    """Id-table rows (n, id width) placed in item-vector coordinates (n, width + 1)."""
    if model.id_dim:
        return torch.cat([torch.zeros(len(rows), model.dim), rows], dim=1)
    return rows


def warm_up(
    model: TwoTower, data: TrainingData, fed: GeneratedFeedback, config: TrainConfig, *, keep_rows: bool = False
) -> dict[str, Any]:
    """Train the id rows of the fed items on the generated pairs; keep the best validation epoch.

    The rows start at zero, or where they are with `keep_rows` (borrowed id parts). Changes
    `model.item_id` in place (only the fed items' rows); returns what happened.
    """
    if model.item_id is None or len(fed) == 0:
        return {"pairs": len(fed), "best_epoch": 0, "reason": "no item ids or no generated pairs"}
    items = np.unique(fed.items)
    users = np.unique(fed.users)
    user_pos = {u: i for i, u in enumerate(users)}
    item_pos = {t: i for i, t in enumerate(items)}
    weights = torch.zeros(len(users), len(items))
    weights[[user_pos[u] for u in fed.users], [item_pos[t] for t in fed.items]] = torch.from_numpy(fed.confidence)
    vectors = user_vectors(model, data, users, config)  # fixed: only the new items move
    with torch.no_grad():
        content = item_table(model, data.items, np.zeros(data.train.shape[1], bool))[torch.from_numpy(items)]
    index = torch.from_numpy(items)
    delta = torch.zeros(len(items), model.item_id.weight.shape[1], requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=config.feedback_lr)
    fed_mask = np.zeros(data.train.shape[1], bool)
    fed_mask[items] = True
    views = validation_views(data, include_warm=config.validation == "all", seed=config.seed)
    scored = dataclasses.replace(data, warm_items=data.warm_items | fed_mask)
    original = model.item_id.weight.detach().clone()
    start = original[index].clone() if keep_rows else torch.zeros_like(delta)  # epoch 0: no feedback

    def install(rows: torch.Tensor) -> None:
        with torch.no_grad():
            model.item_id.weight[index] = rows

    def validate() -> float | None:
        if not views:
            return None
        return float(np.mean(list(evaluate(model, scored, config, views).values())))

    install(start)
    best, best_epoch, best_rows = validate(), 0, start
    curve: list[dict[str, Any]] = [{"epoch": 0, "loss": None, "val": best}]
    for epoch in range(1, config.feedback_epochs + 1):
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for start in range(0, len(users), USER_CHUNK):
            part = slice(start, start + USER_CHUNK)
            table = content + _id_vectors(model, start + delta)
            log_p = torch.log_softmax(vectors[part] @ table.T, dim=1)
            w = weights[part]
            loss = -(w * log_p).sum() / weights.sum()  # confidence-weighted, every pair counts once
            if config.feedback_l2:
                loss = loss + config.feedback_l2 * (delta**2).sum(1).mean() * (len(w) / len(users))
            loss.backward()
            total += float(loss.detach())
        optimizer.step()
        install(start + delta.detach())
        metric = validate() if epoch % config.eval_every == 0 else None
        curve.append({"epoch": epoch, "loss": total, "val": metric})
        if metric is not None and (best is None or metric > best):
            best, best_epoch, best_rows = metric, epoch, start + delta.detach()
        elif best is None:
            best_epoch, best_rows = epoch, start + delta.detach()
    install(best_rows)
    kept = model.item_id.weight.detach().clone()
    changed = (kept != original).any(dim=1)
    log.info("generated feedback: %d pairs on %d items, best epoch %d (val %s)", len(fed), len(items),
             best_epoch, best)
    return {
        "pairs": len(fed), "items": len(items), "calibrated": fed.calibrated,
        "confidence": _quantiles(fed.confidence),
        "best_epoch": best_epoch, "best_val": best, "curve": copy.deepcopy(curve),
        "rows_changed": int(changed.sum()),
    }


def apply(
    model: TwoTower, data: TrainingData, config: TrainConfig, history: Any
) -> tuple[np.ndarray, GeneratedFeedback | None]:
    """Give cold items an id part after training: borrowed from neighbours, then generated feedback.

    With `config.cold_id_neighbors`, every cold item first borrows the id embeddings of its
    nearest warm items by content (`neighbor_ids.apply`, recorded in `history.cold_ids`). With
    `config.generated_feedback`, generated feedback warms the cold items up (from there).
    Returns the (n_items,) mask of items that now own an id part (the warm items, plus the cold
    ones whose part was kept) and the generated pairs (None when off); what happened goes to
    `history.feedback`.
    """
    history.cold_ids = neighbor_ids.apply(model, data, config)
    borrowed = history.cold_ids is not None and history.cold_ids["weight"] > 0
    warm = np.ones_like(data.warm_items) if borrowed else data.warm_items
    if not config.generated_feedback:
        return warm, None
    fed = generate(model, data, config.generated_feedback, config)
    history.feedback = warm_up(model, data, fed, config, keep_rows=borrowed)
    if history.feedback["best_epoch"] == 0:
        return warm, fed  # validation preferred the items without it: ids stay as they were
    mask = warm.copy()
    mask[fed.items] = True
    return mask, fed


def _quantiles(values: np.ndarray) -> dict[str, float]:
    """Min, quartiles and max of the confidences (for the history)."""
    if len(values) == 0:
        return {}
    q = np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0])
    return dict(zip(("min", "q25", "median", "q75", "max"), (round(float(v), 4) for v in q), strict=True))
