"""Differentially private training of the user tower: DP-SGD with one *user* as the privacy unit.

What is private: every gradient step. Users enter a step by Poisson sampling (rate q = batch_users
/ n_users); each sampled user's gradient — over everything their interactions touch in the
model — is clipped to `dp_max_grad_norm`; Gaussian noise of std `noise_multiplier x max_grad_norm`
is added to the sum, which is divided by the expected batch size. Opacus's RDP accountant turns
(q, noise, steps) into the (epsilon, delta) spent, reported in the training history (and so in
the checkpoint's meta.json). The guarantee is user-level: adding or removing one person with all
their interactions changes the distribution of the trained weights by at most (epsilon, delta).

What this covers, and why not more: per-user models cannot be private (a user's id embedding is
learnt from that user alone), so private training runs without user ids; full item id embeddings
and the item residual would take noise on every coordinate of the catalogue at every step, so the
item tower stays at its content initialisation (whitened text of each item) plus one learned
number per item, its bias (popularity, which every user's gradient pushes the same way). The user
tower learns: attention over the history, the no-history vector and its shrinkage, the attribute
map, the logit scale. Opacus's GradSampleModule cannot wrap thaw's towers as they are (one shared item
table is scored by every user of a batch, attribute bags are ragged), so per-user gradients are
computed here one user at a time through autograd, which the frozen item table makes cheap.
Not covered: the choices fitted before training that depend on which items have interactions (the
text whitening, attribute vocabularies, the candidate set) and the selection of the best epoch on
validation pairs (early stopping). See docs/privacy.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from thaw.models.thaw_model import ThawConfig
    from thaw.models.two_tower import TwoTower
    from thaw.training.batches import Batch, BatchSampler
    from thaw.training.loop import TrainConfig, TrainingData

ACCOUNTANT = "rdp"


def is_private(config: TrainConfig) -> bool:
    """True when `config` asks for differentially private training."""
    return config.dp_epsilon > 0 or config.dp_noise_multiplier > 0


def private_config(config: ThawConfig) -> ThawConfig:
    """`config` with what private training needs: no user ids, item ids in the shared space (only
    their bias coordinate trains), no item residual."""
    model = dataclasses.replace(config.model, user_ids=False, item_ids=True, id_dim=0, item_residual=False)
    return dataclasses.replace(config, model=model)


class PrivateTraining:
    """DP-SGD steps for the loop: Poisson batches, clipped per-user gradients, noise, accounting."""

    def __init__(
        self, model: TwoTower, data: TrainingData, config: TrainConfig, sampler: BatchSampler,
        text_cache: Tensor | None, log_popularity: Tensor,
    ) -> None:
        from opacus.accountants import RDPAccountant
        from opacus.accountants.utils import get_noise_multiplier

        if model.user_id is not None or model.item_residual is not None or model.id_dim:
            raise ValueError(
                "private training needs user_ids=False, item_residual=False and id_dim=0 in the "
                "model settings (thaw.training.private.private_config sets them)"
            )
        if config.loss != "softmax" or config.distill_weight or config.distill_rating_weight or config.id_l2:
            raise ValueError("private training supports loss='softmax' without distillation or id_l2")
        if config.dp_max_grad_norm <= 0:
            raise ValueError(f"dp_max_grad_norm must be > 0, got {config.dp_max_grad_norm}")
        self.model, self.data, self.config, self.sampler = model, data, config, sampler
        n_users = sampler.n_users
        self.sample_rate = min(1.0, config.batch_users / n_users)
        self.steps_per_epoch = max(1, round(1.0 / self.sample_rate))
        self.delta = config.dp_delta if config.dp_delta > 0 else 1.0 / (10.0 * n_users)
        planned = self.steps_per_epoch * config.epochs
        self.noise_multiplier = config.dp_noise_multiplier or get_noise_multiplier(
            target_epsilon=config.dp_epsilon, target_delta=self.delta, sample_rate=self.sample_rate,
            steps=planned, accountant=ACCOUNTANT,
        )
        self.accountant = RDPAccountant()
        self.generator = torch.Generator().manual_seed(config.seed + 0xD9)
        self.rng = np.random.default_rng([config.seed, 0xD9])
        self.log_popularity = log_popularity
        # The item tower is frozen but for each item's bias: score the content of every item once.
        for module in (model.text_projection, model.item_features):
            if module is not None:
                module.requires_grad_(False)
        model.item_bias.requires_grad_(False)
        with torch.no_grad():
            rows = np.arange(data.train.shape[1])
            self.table = model.item_content(data.items.rows(rows), None if text_cache is None else text_cache)
            # Of an item's id part only the last coordinate, its bias, trains; the rest stays 0.
            self.item_id = None if model.item_id is None else model.item_id.weight
            if self.item_id is not None:
                self.item_id[:, :-1] = 0.0
        self.params = [p for p in model.parameters() if p.requires_grad and p is not self.item_id]

    def batches(self, sampler: BatchSampler) -> Callable[[], Iterator[Batch | None]]:
        """An epoch of `steps_per_epoch` Poisson-sampled batches (None: nobody sampled this step)."""

        def epoch() -> Iterator[Batch | None]:
            for _ in range(self.steps_per_epoch):
                chosen = sampler.users[self.rng.random(len(sampler.users)) < self.sample_rate]
                yield sampler.batch(chosen) if len(chosen) else None

        return epoch

    def step(self, batch: Batch | None) -> Tensor:
        """Set every trainable weight's .grad to the noisy clipped mean; returns the batch's mean loss."""
        clip = self.config.dp_max_grad_norm
        # The item biases as a leaf of their own: per-user gradients of (n_items,), not of the table.
        bias = None if self.item_id is None else self.item_id[:, -1].detach().clone().requires_grad_(True)
        leaves = self.params + ([] if bias is None else [bias])
        total = [torch.zeros_like(p) for p in leaves]
        losses = []
        for row in range(0 if batch is None else len(batch.users)):
            assert batch is not None
            loss = self._user_loss(batch, row, bias)
            grads = torch.autograd.grad(loss, leaves, allow_unused=True)
            grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, leaves, strict=True)]
            norm = torch.sqrt(sum((g * g).sum() for g in grads))
            scale = min(1.0, clip / (float(norm) + 1e-12))
            for acc, g in zip(total, grads, strict=True):
                acc.add_(g, alpha=scale)
            losses.append(float(loss.detach()))
        expected = self.sample_rate * self.sampler.n_users
        noisy = [(acc + torch.randn(acc.shape, generator=self.generator) * (self.noise_multiplier * clip)) / expected
                 for acc in total]
        for param, grad in zip(self.params, noisy, strict=False):
            param.grad = grad
        if self.item_id is not None:
            self.item_id.grad = torch.zeros_like(self.item_id)
            self.item_id.grad[:, -1] = noisy[-1]
        self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)
        return torch.tensor(float(np.mean(losses)) if losses else 0.0)

    def _user_loss(self, batch: Batch, row: int, bias: Tensor | None) -> Tensor:
        """One user's multi-positive softmax loss over the batch's candidates."""
        candidates = torch.from_numpy(batch.candidates)
        table = self.table[candidates]  # (C, width + 1): content, then each item's bias
        if bias is not None:
            table = table + torch.nn.functional.pad(bias[candidates][:, None], (self.model.width, 0))
        weight = torch.from_numpy(batch.history_weight[row : row + 1])  # (1, L)
        own = torch.from_numpy(batch.history_index[row])  # (L,) into candidates
        user = torch.from_numpy(batch.users[row : row + 1].astype(np.int64))
        # Pool over the user's own history rows only (attention keys of L items, not of all C).
        vector = self.model.user_vectors(
            table[own], torch.arange(len(own))[None, :], weight, self.data.users.rows(batch.users[row : row + 1]),
            user, torch.zeros(1),
        )  # (1, width + 1)
        logits = (vector @ table.T)[0]  # (C,)
        if self.config.popularity_correction:
            logits = logits - self.config.popularity_correction * self.log_popularity[candidates]
        positives = torch.from_numpy(batch.positives[row])
        excluded = torch.from_numpy(batch.excluded[row])
        log_probs = torch.log_softmax(logits.masked_fill(excluded, float("-inf")), dim=0)
        n_pos = positives.sum().clamp_min(1)
        return -log_probs.masked_fill(~positives, 0.0).sum() / n_pos

    def report(self) -> dict[str, Any]:
        """What was spent: epsilon at delta, and the settings that determine it."""
        steps = sum(n for _, _, n in self.accountant.history) if self.accountant.history else 0
        epsilon = self.accountant.get_epsilon(self.delta) if steps else 0.0
        return {
            "epsilon": float(epsilon), "delta": float(self.delta), "noise_multiplier": float(self.noise_multiplier),
            "max_grad_norm": float(self.config.dp_max_grad_norm), "sample_rate": float(self.sample_rate),
            "steps": int(steps), "unit": "user", "accountant": f"opacus {ACCOUNTANT}",
            "target_epsilon": float(self.config.dp_epsilon) if self.config.dp_epsilon > 0 else None,
        }
