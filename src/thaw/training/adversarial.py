"""GAR's adversarial game between thaw's item content path (generator) and its recommender.

GAR (Chen et al., SIGIR 2022, "Generative Adversarial Framework for Cold-Start Item
Recommendation") trains a generator that maps item content to an item vector against a
recommender that scores users against item vectors:

- the recommender learns to rank a positive item's *real* (warm) vector above its *generated*
  one for the users who interacted with it, mixed with ordinary sampled negatives:
  ``-log σ(s(u, real) - (1 - β) s(u, gen) - β s(u, neg))``;
- the generator learns to make its vector rank like the real one (a relativistic loss, which is
  GAR's main stability measure), plus an L1 pull towards the real vector:
  ``(1 - α) · -log σ(s(u, gen) - s(u, real)) + α · mean |gen - real|``;
- the two are updated in turn, each with its own optimizer and learning rate.

In thaw the generated vector of an item is its content-only vector (`TwoTower.item_content`) and
its real vector is content plus its id part, so the generator's parameters are those of the item
content path (the residual MLP over text and attributes, the attribute embedding, the item bias,
a learnable text projection) and the recommender is everything else (user tower, id tables,
scale). The recommender's adversarial term is added to thaw's ranking loss (whose optimizer is the
recommender's); the generated vector is detached there, so that term never moves the generator.
The generator then takes its own step with its own Adam, against user and real vectors detached
from the same batch (computed before the recommender's step; the generated vectors are computed
after it). Without a trainable text path the generator cannot learn anything about new items'
text, hence the check in `Adversary`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thaw.training.losses import _rank_within_row, positive_pairs, sample_negatives

if TYPE_CHECKING:
    from thaw.models.two_tower import TwoTower
    from thaw.training.loop import TrainConfig, TrainingData

MAX_PAIRS = 4096  # positive pairs per generator step (a batch holds at most B x max_targets)


def check_settings(config: TrainConfig) -> None:
    """Raise ValueError naming the first GAR setting that is out of range."""
    for name in ("gan_alpha", "gan_beta"):
        if not 0.0 <= getattr(config, name) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {getattr(config, name)}")
    if config.gan_weight < 0:
        raise ValueError(f"gan_weight must be >= 0, got {config.gan_weight}")
    if config.gan_lr <= 0:
        raise ValueError(f"gan_lr must be > 0, got {config.gan_lr}")


def generator_parameters(model: TwoTower) -> list[nn.Parameter]:
    """The trainable parameters of the item content path: what GAR's generator is in thaw."""
    modules = [model.item_residual, model.item_features, model.text_projection]
    params = [p for m in modules if m is not None for p in m.parameters() if p.requires_grad]
    return params + [model.item_bias]


def recommender_parameters(model: TwoTower) -> list[nn.Parameter]:
    """Everything that is not the generator: user tower, id tables, scale."""
    generator = {id(p) for p in generator_parameters(model)}
    return [p for p in model.parameters() if p.requires_grad and id(p) not in generator]


class Adversary:
    """The generator's optimizer and the two GAR losses for one training run (see module doc)."""

    def __init__(
        self,
        model: TwoTower,
        config: TrainConfig,
        recommender_optimizer: torch.optim.Optimizer,
        data: TrainingData,
        text_cache: Tensor | None,
    ) -> None:
        params = generator_parameters(model)
        reads_text = model.item_residual is not None and model.config.residual_text
        if not reads_text and not model.config.learn_text_projection:
            raise ValueError(
                "adversarial training needs a generator that reads the item text: set "
                "model.residual_text = true (or learn_text_projection = true)"
            )
        self.model = model
        self.config = config
        self.data = data
        self.text_cache = text_cache
        self.optimizer = torch.optim.Adam(params, lr=config.gan_lr)
        self.rng = torch.Generator().manual_seed(config.seed + 0x6A2)
        self._pending: tuple[Tensor, Tensor, np.ndarray] | None = None
        # Alternating updates: every step of the recommender's optimizer is followed by one of ours.
        recommender_optimizer.register_step_post_hook(lambda *_: self.generator_step())
        self._clear()

    def _clear(self) -> None:
        self._sums = {"d_loss": 0.0, "g_loss": 0.0}
        self._counts = {"d_loss": 0, "g_loss": 0}

    def pop_epoch_losses(self) -> dict[str, float | None]:
        """Mean recommender (discriminator) and generator loss since the last call, then reset."""
        out = {k: (self._sums[k] / self._counts[k] if self._counts[k] else None) for k in self._sums}
        self._clear()
        return out

    def recommender_term(
        self,
        users: Tensor,
        content: Tensor,
        id_part: Tensor,
        positives: Tensor,
        excluded: Tensor,
        candidates: np.ndarray,
    ) -> Tensor:
        """`gan_weight` x GAR's recommender loss on the batch's positive pairs.

        `users` (B, w+1) with grad; `content` (C, w+1) the generated (content-only) vectors and
        `id_part` (C, w+1) the id parts of the batch's candidates. Also remembers the detached
        pairs for the generator step that follows.
        """
        rows, cols = positive_pairs(positives)
        if len(rows) > MAX_PAIRS:
            keep = torch.randperm(len(rows), generator=self.rng)[:MAX_PAIRS].sort().values
            rows, cols = rows[keep], cols[keep]
        if len(rows) == 0:
            self._pending = None
            return users.sum() * 0.0
        generated = content.detach()
        real = generated + id_part  # the recommender's own (warm) item vectors
        negatives = sample_negatives(positives, excluded, int(positives.sum(1).max()), self.rng)
        neg_cols = negatives[rows, _rank_within_row(rows)]
        u = users[rows]
        s_real = (u * real[cols]).sum(1)
        s_gen = (u * generated[cols]).sum(1)
        s_neg = (u * real[neg_cols]).sum(1)
        beta = self.config.gan_beta
        loss = F.softplus(-(s_real - (1.0 - beta) * s_gen - beta * s_neg)).mean()
        self._sums["d_loss"] += float(loss.detach())
        self._counts["d_loss"] += 1
        self._pending = (u.detach(), real[cols].detach(), candidates[cols.numpy()])
        return self.config.gan_weight * loss

    def generator_step(self) -> float | None:
        """One Adam step of the generator against the pairs of the last recommender term."""
        if self._pending is None:
            return None
        users, real, items = self._pending
        self._pending = None
        text_part = None if self.text_cache is None else self.text_cache[torch.from_numpy(items)]
        generated = self.model.item_content(self.data.items.rows(items), text_part)  # (n, w+1)
        alpha = self.config.gan_alpha
        s_gen = (users * generated).sum(1)
        s_real = (users * real).sum(1)
        loss = (1.0 - alpha) * F.softplus(-(s_gen - s_real)).mean()
        loss = loss + alpha * (generated - real).abs().mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)  # the ranking step starts from clean grads
        value = float(loss.detach())
        self._sums["g_loss"] += value
        self._counts["g_loss"] += 1
        return value
