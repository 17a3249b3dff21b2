"""The training loop of the two-tower model: batches of users, id-dropout, distillation, early stopping.

A batch is B warm users. Each user's training items are split at random into a history (what the
user tower sees) and targets (what it must rank high among all items of the batch plus random
negatives). Each user plays one role per batch, as in DropoutNet's training options: warm (id +
history), history-only (id dropped), onboarding (id dropped, 1–k history items) or cold (id and
history dropped: attributes only). Each item of the batch loses its id part with a probability,
so content-only item vectors learn to live in the warm space.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch

from thaw.models.tower_data import EntityFeatures
from thaw.models.two_tower import TwoTower
from thaw.training import adversarial, feedback, losses, neighbor_ids
from thaw.training.batches import Batch, BatchSampler
from thaw.training.private import PrivateTraining, is_private
from thaw.training.validation import evaluate, validation_views

if TYPE_CHECKING:
    from thaw.training.distributed import Parallel

log = logging.getLogger(__name__)

USER_MODES = ("warm", "history", "onboarding", "cold")
VALIDATION_MODES = ("auto", "all")


@dataclass(frozen=True)
class TrainConfig:
    """How the two-tower model is trained."""

    epochs: int = 60
    batch_users: int = 128
    lr: float = 5e-4
    content_lr_scale: float = 0.1  # learning-rate factor for the maps on the pretrained space
    id_lr: float = 3e-3  # learning rate of the id embedding tables
    loss: str = "softmax"  # "softmax" (sampled, in-batch + random negatives) or "bpr"
    max_history: int = 64  # history items fed to the user tower per training example
    max_targets: int = 32
    target_fraction: float = 0.2  # share of a user's items used as targets in a batch
    n_random_negatives: int = 512
    full_softmax_items: int = 50_000  # up to this many warm items, every one is a candidate
    item_id_dropout: float = 0.5  # DropoutNet: probability an item's id part is dropped
    user_modes: tuple[float, ...] = (0.3, 0.2, 0.3, 0.2)  # warm, history, onboarding, cold
    onboarding_max: int = 5
    distill_weight: float = 0.0  # ALDI ranking-aligning weight (0 = off)
    distill_rating_weight: float = 0.0  # ALDI rating-distribution aligning weight
    distill_count_scale: float = 5.0  # teacher weight tanh(count / scale)
    distill_cap: float = 3.0  # teacher weight capped at tanh(cap)
    id_l2: float = 0.0  # L2 on the id embeddings of a batch
    popularity_correction: float = 0.0  # subtract this x log(1 + count) from content-only logits
    eval_every: int = 1
    patience: int = 6  # evaluations without improvement before stopping
    eval_k: int = 20
    eval_metric: str = "recall"  # "recall" or "ndcg" at eval_k, on the validation views
    validation: str = "auto"  # "auto": the cold part of the validation decides; "all": every view
    max_eval_history: int = 512
    max_seconds: float | None = None  # wall-clock budget for training
    seed: int = 0
    threads: int = 1
    # GAR (training/adversarial.py): generator = item content path, recommender = the rest.
    adversarial: bool = False
    gan_alpha: float = 0.9  # generator: weight of the L1 pull to the real vector (rest: adversarial)
    gan_beta: float = 0.9  # recommender: weight of sampled negatives beside the generated vector
    gan_weight: float = 0.1  # weight of the recommender's adversarial term in its loss
    gan_lr: float = 1e-5  # the generator's own Adam learning rate
    # Generated feedback (training/feedback.py): users generated per cold item (0 = off).
    generated_feedback: int = 0
    feedback_epochs: int = 20
    feedback_lr: float = 3e-3
    feedback_l2: float = 0.0
    # Borrowed id parts (training/neighbor_ids.py): cold items take their nearest warm items' ids.
    cold_id_neighbors: int = 0  # neighbours by content (0 = off); the weight is chosen on validation
    cold_id_temperature: float = 0.1  # softmax temperature over the neighbours' cosines
    # Differential privacy (training/private.py): DP-SGD on the user tower, one user = one unit.
    dp_epsilon: float = 0.0  # target epsilon over all epochs (0 = off unless a noise multiplier is set)
    dp_noise_multiplier: float = 0.0  # noise std / clipping norm; overrides dp_epsilon when > 0
    dp_max_grad_norm: float = 1.0  # each user's gradient is clipped to this L2 norm
    dp_delta: float = 0.0  # 0: 1 / (10 x training users)

    def __post_init__(self) -> None:
        if self.loss not in losses.LOSSES:
            raise ValueError(f"loss must be one of {losses.LOSSES}, got {self.loss!r}")
        for name in ("epochs", "batch_users", "max_history", "max_targets", "eval_every",
                     "full_softmax_items", "patience", "eval_k", "max_eval_history", "threads", "onboarding_max"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.content_lr_scale <= 0 or self.id_lr <= 0:
            raise ValueError("lr, content_lr_scale and id_lr must be > 0")
        if not 0.0 < self.target_fraction <= 1.0:
            raise ValueError(f"target_fraction must be in (0, 1], got {self.target_fraction}")
        if not 0.0 <= self.item_id_dropout <= 1.0:
            raise ValueError(f"item_id_dropout must be in [0, 1], got {self.item_id_dropout}")
        if len(self.user_modes) != len(USER_MODES) or min(self.user_modes) < 0:
            raise ValueError(f"user_modes must be {len(USER_MODES)} weights >= 0 for {USER_MODES}")
        if sum(self.user_modes) <= 0:
            raise ValueError("user_modes must not all be 0")
        for name in ("n_random_negatives", "distill_weight", "distill_rating_weight", "id_l2",
                     "popularity_correction"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.distill_count_scale <= 0 or self.distill_cap <= 0:
            raise ValueError("distill_count_scale and distill_cap must be > 0")
        if self.eval_metric not in ("recall", "ndcg"):
            raise ValueError(f"eval_metric must be 'recall' or 'ndcg', got {self.eval_metric!r}")
        if self.validation not in VALIDATION_MODES:
            raise ValueError(f"validation must be one of {VALIDATION_MODES}, got {self.validation!r}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError("max_seconds must be > 0")
        for name in ("dp_epsilon", "dp_noise_multiplier", "dp_delta"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.dp_delta < 1.0 or self.dp_max_grad_norm <= 0:
            raise ValueError("dp_delta must be in [0, 1) and dp_max_grad_norm > 0")
        adversarial.check_settings(self)
        feedback.check_settings(self)
        neighbor_ids.check_settings(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from plain values (a JSON/TOML section); unknown keys are an error."""
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown train settings: {', '.join(sorted(unknown))}")
        values = dict(values)
        if "user_modes" in values:
            values["user_modes"] = tuple(float(x) for x in values["user_modes"])
        return cls(**values)


@dataclass(frozen=True)
class TrainingData:
    """What the loop learns from: interaction strengths and content features, as arrays."""

    train: sp.csr_matrix  # (n_users, n_items) event strengths of training interactions
    items: EntityFeatures
    users: EntityFeatures
    warm_users: np.ndarray  # (n_users,) bool
    warm_items: np.ndarray  # (n_items,) bool
    validation: sp.csr_matrix | None = None  # (n_users, n_items) held-out positives
    validation_items: np.ndarray | None = None  # candidate item indices for validation
    train_times: np.ndarray | None = None  # (nnz,) first-event time of each pair of `train`


@dataclass(frozen=True)
class EpochReport:
    """Progress after one epoch: what a callback receives."""

    epoch: int
    epochs: int
    loss: float
    val_metric: float | None  # validation Recall@k, when evaluated this epoch
    best_metric: float | None
    elapsed: float  # seconds since training started


@dataclass
class History:
    """What happened during training: one row per epoch, and the chosen epoch."""

    epochs: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_metric: float | None = None
    metric: str = "recall@20"
    stopped_early: bool = False
    seconds: float = 0.0
    feedback: dict[str, Any] | None = None  # what the generated-feedback warm-up did (feedback.py)
    cold_ids: dict[str, Any] | None = None  # the borrowed id parts of cold items (neighbor_ids.py)
    world_size: int = 1  # processes that trained it (thaw train --nproc)
    privacy: dict[str, Any] | None = None  # DP-SGD accounting (epsilon, delta, ...) when private

    def to_dict(self) -> dict[str, Any]:
        """Plain values for a checkpoint."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> History:
        """The inverse of `to_dict`."""
        return cls(**values)


Callback = Callable[[EpochReport], None]


def train(
    model: TwoTower,
    data: TrainingData,
    config: TrainConfig,
    *,
    callback: Callback | None = None,
    parallel: Parallel | None = None,
) -> History:
    """Train `model` in place; it ends with the weights of the best validation epoch.

    With `parallel` (thaw.training.distributed) this process trains on its shard of every batch,
    gradients are averaged across processes, and only the main process validates and decides
    when to stop.
    """
    generator = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    sampler = BatchSampler(data.train, data.warm_items, config, rng, data.train_times)
    if sampler.n_users == 0:
        raise ValueError("no user has a training interaction: nothing to learn from")
    item_counts = torch.from_numpy(np.diff(data.train.tocsc().indptr).astype(np.float32))
    teacher_weight = losses.teacher_weights(item_counts, config.distill_count_scale, config.distill_cap)
    log_popularity = torch.log1p(item_counts)
    text_cache = None
    if model.text_part_is_fixed:
        with torch.no_grad():  # the text path does not train: project every item's text once
            text_cache = model.item_text_part(data.items.rows(np.arange(data.train.shape[1])))
    private = None
    if is_private(config):  # before the optimizer: private training freezes the item tower
        if parallel is not None:
            raise ValueError("private (DP) training runs in one process: drop --nproc or the dp settings")
        private = PrivateTraining(model, data, config, sampler, text_cache, log_popularity)
    optimizer = torch.optim.Adam(_param_groups(model, config))
    # GAR: the generator steps with its own optimizer right after each of the recommender's steps.
    adversary = adversarial.Adversary(model, config, optimizer, data, text_cache) if config.adversarial else None
    history = History(metric=f"{config.eval_metric}@{config.eval_k}")
    main = parallel is None or parallel.is_main
    views = validation_views(data, include_warm=config.validation == "all", seed=config.seed) if main else {}
    validate = bool(views)
    start = time.perf_counter()
    best_state = copy.deepcopy(model.state_dict())
    if validate:
        # Epoch 0 is the untrained content model: training must beat it on validation to count.
        scores = evaluate(model, data, config, views)
        history.best_metric = float(np.mean(list(scores.values())))
        history.epochs.append(
            {"epoch": 0, "loss": None, "val": history.best_metric, "views": scores, "elapsed": 0.0}
        )
    stale = 0

    def step_loss(batch: Batch) -> torch.Tensor:
        return _batch_loss(model, batch, data, config, generator, teacher_weight, log_popularity, text_cache, adversary)

    batches = sampler.epoch
    if parallel is not None:  # DDP averages the gradients; each process draws its own shard
        step_loss, batches = parallel.wrap(model, step_loss), parallel.batches(sampler)
    if private is not None:  # clipped per-user gradients plus noise, set by the step itself
        step_loss, batches = private.step, private.batches(sampler)
    for epoch in range(1, config.epochs + 1):
        model.train()
        total, n_batches = 0.0, 0
        for batch in batches():
            loss = step_loss(batch)
            if private is None:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
            optimizer.step()
            total += float(loss.detach())
            n_batches += 1
        mean_loss = total / max(n_batches, 1)
        if parallel is not None:
            mean_loss = parallel.mean(mean_loss)
        if not np.isfinite(mean_loss):
            raise FloatingPointError(f"training diverged at epoch {epoch} (loss {mean_loss})")
        metric, scores = None, None
        if validate and epoch % config.eval_every == 0:
            scores = evaluate(model, data, config, views)
            metric = float(np.mean(list(scores.values())))
            if history.best_metric is None or metric > history.best_metric:
                history.best_metric, history.best_epoch, stale = metric, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
        elapsed = time.perf_counter() - start
        history.epochs.append(
            {"epoch": epoch, "loss": mean_loss, "val": metric, "views": scores, "elapsed": elapsed}
            | (adversary.pop_epoch_losses() if adversary is not None else {})
        )
        log.info("epoch %d loss %.4f val %s (%.1fs)", epoch, mean_loss, metric, elapsed)
        if callback is not None:
            callback(EpochReport(epoch, config.epochs, mean_loss, metric, history.best_metric, elapsed))
        stop = (validate and stale >= config.patience) or (
            config.max_seconds is not None and elapsed > config.max_seconds
        )
        if parallel is not None:
            stop = parallel.agree(stop)  # the main process decides for all
        if stop:
            history.stopped_early = True
            break
    if validate:
        model.load_state_dict(best_state)
    else:
        history.best_epoch = len(history.epochs)
    model.eval()
    history.seconds = time.perf_counter() - start
    history.world_size = 1 if parallel is None else parallel.world_size
    history.privacy = None if private is None else private.report()
    return history


def _param_groups(model: TwoTower, config: TrainConfig) -> list[dict[str, Any]]:
    """Adam groups: id tables at `id_lr`; the dense maps on the pretrained space at
    `lr * content_lr_scale`; everything else at `lr`.

    Adam moves every weight by about its learning rate per step whatever the gradient, so a
    384x384 map that starts at the identity drifts far in a few hundred steps, while an id row
    is only updated when its user or item is in the batch and needs a larger rate to learn.
    """
    slow_modules = [model.text_projection, model.item_residual, model.user_residual, model.content_to_ids]
    slow = {id(p) for m in slow_modules if m is not None for p in m.parameters()}
    ids = {id(t.weight) for t in (model.item_id, model.user_id) if t is not None}
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if id(p) in ids], "lr": config.id_lr},
        {"params": [p for p in params if id(p) in slow], "lr": config.lr * config.content_lr_scale},
        {"params": [p for p in params if id(p) not in slow and id(p) not in ids], "lr": config.lr},
    ]
    return [g for g in groups if g["params"]]


def _batch_loss(
    model: TwoTower,
    batch: Batch,
    data: TrainingData,
    config: TrainConfig,
    generator: torch.Generator,
    teacher_weight: torch.Tensor,
    log_popularity: torch.Tensor,
    text_cache: torch.Tensor | None,
    adversary: adversarial.Adversary | None = None,
) -> torch.Tensor:
    candidates = torch.from_numpy(batch.candidates)
    text_part = None if text_cache is None else text_cache[candidates]
    content = model.item_content(data.items.rows(batch.candidates), text_part)  # (C, width + 1)
    id_part = model.item_id_part(candidates)  # (C, width + 1)
    keep = (torch.rand(len(candidates), generator=generator) >= config.item_id_dropout).float()
    table = content + keep[:, None] * id_part
    users = model.user_vectors(
        table,
        torch.from_numpy(batch.history_index),
        torch.from_numpy(batch.history_weight),
        data.users.rows(batch.users),
        torch.from_numpy(batch.users.astype(np.int64)),
        torch.from_numpy(batch.keep_user_id),
    )  # (B, width + 1)
    logits = users @ table.T  # (B, C)
    if config.popularity_correction:
        # Content-only items are scored on lift, not popularity: a cold item has no popularity to
        # learn from its text, so the content path should not spend itself predicting it.
        correction = config.popularity_correction * log_popularity[candidates] * (1.0 - keep)
        logits = logits - correction[None, :]
    positives = torch.from_numpy(batch.positives)
    excluded = torch.from_numpy(batch.excluded)
    if config.loss == "softmax":
        loss = losses.sampled_softmax(logits, positives, excluded)
    else:
        loss = losses.bpr(logits, positives, excluded, generator)
    if config.distill_weight or config.distill_rating_weight:
        # ALDI: the warm model (items with their id part) teaches the content-only item vectors.
        frozen_users = users.detach()
        teacher = frozen_users @ (content + id_part).detach().T
        student = frozen_users @ content.T
        loss = loss + losses.aldi_distillation(
            student, teacher, positives, excluded, teacher_weight[candidates], generator,
            rank_weight=config.distill_weight, rating_weight=config.distill_rating_weight,
        )
    if config.id_l2:
        penalty = (id_part**2).sum(dim=1).mean()
        if model.user_id is not None:
            own = model.user_id(torch.from_numpy(batch.users.astype(np.int64)))
            penalty = penalty + (own**2).sum(dim=1).mean()
        loss = loss + config.id_l2 * penalty
    if adversary is not None:
        loss = loss + adversary.recommender_term(users, content, id_part, positives, excluded, batch.candidates)
    return loss
