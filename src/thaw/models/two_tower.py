"""thaw's two-tower network: item tower over content (+ id), user tower over history, attributes (+ id).

Score = user · item. The last coordinate carries an item bias: user vectors end in a constant 1 and
item vectors in their bias, so serving stays a plain dot product.

Item tower:  v_i = P W (x_i - m) + R(attrs_i) + keep_i * E_i
User tower:  u   = s * (pool(history) + A(attrs_u) + keep_u * F_u)

`x_i` is the pretrained text vector, centred and partially whitened by (m, W) fitted on training
items; `P` is the identity (or an orthonormal projection) and stays fixed by default; residual
MLPs start at zero, so an untrained model ranks exactly like a content-KNN over the (whitened)
pretrained space, and training adds collaborative signal beside it: id embeddings, attribute
maps, attention. `pool` is attention over the item vectors of the user's history, with each
item's event strength added as a log-prior.

With `id_dim > 0` the id embeddings E_i, F_u get their own coordinates: vectors are
[content | ids | bias], so a cold item (id block zero) is scored by the content block alone and
the user's free id embedding never bends the content match (ALDI's separate warm/cold scoring,
inside one dot product). With `id_dim = 0` ids add to the content coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from thaw.models.tower_data import FeatureBatch


@dataclass(frozen=True)
class TwoTowerConfig:
    """Architecture of the two towers; sizes of the data are filled in by the estimator at fit."""

    dim: int = 0  # embedding size; 0 means "the text encoder's dimension"
    hidden: int = 256  # width of the residual and attribute MLPs
    attr_dim: int = 32  # size of the learned embedding of categorical attributes
    n_heads: int = 2  # attention heads pooling the history
    key_dim: int = 64  # size of attention keys and queries
    attention: bool = True  # False pools the history with an event-weighted mean
    history_shrinkage: float = 3.0  # initial kappa of n / (n + kappa) trust in the history (0 = off)
    item_residual: bool = True  # learned residual MLP over item attributes (and text, see below)
    residual_text: bool = False  # the item residual also reads the text vector
    user_residual: bool = False  # learned residual MLP on the pooled history
    learn_text_projection: bool = False  # True lets P move away from its (identity) start
    text_whitening: float = 0.5  # PCA-whitening exponent for text vectors (0 = raw vectors)
    item_ids: bool = True  # id embeddings for warm items
    id_dim: int = 0  # > 0: ids live in their own coordinates; 0: ids add to the content space
    content_to_ids: bool = True  # with id_dim: a learned map from pooled content into the id block
    user_ids: bool = True  # id embeddings for warm users
    id_init: str = "random"  # "als": start the id blocks at implicit-ALS factors (needs id_dim > 0)
    als_regularization: float = 10.0  # the ALS fit behind id_init = "als"
    als_alpha: float = 10.0
    init_scale: float = 10.0  # initial logit scale s (an inverse temperature)
    id_init_std: float = 1e-3  # small: an untrained model stays a content-KNN
    # New users' popularity prior (models/priors.py): vectors gain a log-popularity coordinate,
    # weighted (attributes only, with history) for users without an id part; warm users weigh 0.
    # None: each fit chooses the weights on training users replayed as new ones. A third weight is
    # for a history unlike newcomers' usual first picks (adaptive_prior; the fit sets opening_range).
    popularity_prior: bool = True
    prior_weights: tuple[float, ...] | None = None
    adaptive_prior: bool = True
    opening_range: tuple[float, float] | None = None
    # Data sizes (0 = absent), set by the estimator.
    n_users: int = 0
    n_items: int = 0
    text_dim: int = 0
    user_text_dim: int = 0
    n_item_categories: int = 0
    n_item_numeric: int = 0
    n_user_categories: int = 0
    n_user_numeric: int = 0

    def __post_init__(self) -> None:
        for name in ("dim", "id_dim", "n_users", "n_items", "text_dim", "user_text_dim", "n_item_categories",
                     "n_item_numeric", "n_user_categories", "n_user_numeric"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("hidden", "attr_dim", "n_heads", "key_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.id_init not in ("random", "als"):
            raise ValueError(f"id_init must be 'random' or 'als', got {self.id_init!r}")
        if self.id_init == "als" and self.id_dim < 1:
            raise ValueError("id_init = 'als' needs id_dim > 0 (the ALS factors get coordinates of their own)")
        if not 0.0 <= self.text_whitening <= 1.0:
            raise ValueError(f"text_whitening must be in [0, 1], got {self.text_whitening}")
        if self.history_shrinkage < 0:
            raise ValueError(f"history_shrinkage must be >= 0, got {self.history_shrinkage}")
        if self.init_scale <= 0:
            raise ValueError(f"init_scale must be > 0, got {self.init_scale}")
        if self.id_init_std < 0:
            raise ValueError(f"id_init_std must be >= 0, got {self.id_init_std}")
        if self.prior_weights is not None:
            weights = tuple(float(w) for w in self.prior_weights)  # JSON gives a list
            if len(weights) not in (2, 3) or min(weights) < 0:
                raise ValueError(f"prior_weights must be two or three weights >= 0, got {self.prior_weights!r}")
            object.__setattr__(self, "prior_weights", weights)
        if self.opening_range is not None:
            low, high = (float(v) for v in self.opening_range)
            if not 0.0 <= low < high <= 1.0:
                raise ValueError(f"opening_range must be two shares 0 <= low < high <= 1, got {self.opening_range!r}")
            object.__setattr__(self, "opening_range", (low, high))

    @property
    def out_dim(self) -> int:
        """The embedding size actually used (`dim`, or the text dimension when `dim` is 0)."""
        if self.dim:
            return self.dim
        if self.text_dim:
            return self.text_dim
        raise ValueError("dim must be set when there is no text encoder")

class _Features(nn.Module):
    """Concatenates text, a learned embedding of the categorical multi-hot, and numeric features."""

    def __init__(self, text_dim: int, n_categories: int, n_numeric: int, attr_dim: int) -> None:
        super().__init__()
        # text_dim = 0 leaves the text out even when a batch carries it.
        self.categories = nn.EmbeddingBag(n_categories, attr_dim, mode="sum") if n_categories else None
        self.use_text = text_dim > 0
        self.in_dim = text_dim + (attr_dim if n_categories else 0) + n_numeric

    def forward(self, batch: FeatureBatch) -> Tensor:
        parts = []
        if self.use_text and batch.text is not None:
            parts.append(batch.text)
        if self.categories is not None and batch.categorical is not None:
            index, offsets, weights = batch.categorical
            parts.append(self.categories(index, offsets, per_sample_weights=weights))
        if batch.numeric is not None:
            parts.append(batch.numeric)
        if not parts:
            return torch.zeros(batch.n, 0)
        return torch.cat(parts, dim=1)  # (n, in_dim)


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))


class TwoTower(nn.Module):
    """User and item towers whose dot product is the score."""

    def __init__(self, config: TwoTowerConfig) -> None:
        super().__init__()
        self.config = config
        d = config.out_dim
        self.dim = d  # content coordinates
        self.id_dim = config.id_dim  # separate id coordinates (0: ids share the content ones)
        self.width = d + config.id_dim  # every vector is [content | ids | bias]
        w = self.width
        # ---- item tower
        # The residual reads attributes, and the text only with `residual_text`: on text alone it
        # memorises the training items instead of generalising to new ones (docs/methods.md).
        self.item_features = _Features(
            config.text_dim if config.residual_text else 0, config.n_item_categories,
            config.n_item_numeric, config.attr_dim,
        )
        self.text_projection = nn.Linear(config.text_dim, d, bias=False) if config.text_dim else None
        if self.text_projection is not None and not config.learn_text_projection:
            self.text_projection.weight.requires_grad_(False)
        in_item = self.item_features.in_dim
        # The residual also yields the content part of the item bias (last coordinate).
        self.item_residual = _mlp(in_item, config.hidden, d + 1) if in_item and config.item_residual else None
        self.item_bias = nn.Parameter(torch.zeros(1))
        # Fitted, not learned: centring and (partial) whitening of the text vectors (see `whitening`).
        self.register_buffer("text_mean", torch.zeros(config.text_dim))
        self.register_buffer("text_transform", torch.eye(config.text_dim))
        id_width = (config.id_dim or d) + 1  # the id part also carries a bias
        self.item_id = nn.Embedding(config.n_items, id_width) if config.item_ids and config.n_items else None
        # ---- user tower
        self.user_features = _Features(
            config.user_text_dim, config.n_user_categories, config.n_user_numeric, config.attr_dim
        )
        in_user = self.user_features.in_dim
        self.user_attr = (
            nn.Sequential(nn.Linear(in_user, config.hidden), nn.GELU()) if in_user else None
        )
        self.user_attr_out = nn.Linear(config.hidden, w) if in_user else None
        self.empty_history = nn.Parameter(torch.zeros(w))
        self.key = nn.Linear(w, config.key_dim, bias=False)
        self.query = nn.Parameter(torch.zeros(config.n_heads, config.key_dim))
        self.user_query = nn.Linear(config.hidden, config.n_heads * config.key_dim) if in_user else None
        self.user_residual = _mlp(d, config.hidden, d) if config.user_residual else None
        self.user_id = (
            nn.Embedding(config.n_users, config.id_dim or d) if config.user_ids and config.n_users else None
        )
        # What a user's content history says about their collaborative (id) taste; zero at start.
        self.content_to_ids = (
            nn.Linear(d, config.id_dim, bias=False) if config.id_dim and config.content_to_ids else None
        )
        self.log_scale = nn.Parameter(torch.tensor(math.log(config.init_scale)))
        # n / (n + kappa) of the pooled history, the rest from the empty-history vector.
        self.shrinkage = nn.Parameter(torch.zeros(1)) if config.history_shrinkage > 0 else None

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """Initialise every parameter from `generator`: an untrained model is a content-KNN."""
        cfg = self.config
        for module in self.modules():
            if isinstance(module, nn.Linear):
                bound = 1.0 / math.sqrt(module.in_features)
                module.weight.uniform_(-bound, bound, generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.EmbeddingBag):
                module.weight.normal_(0.0, 0.1, generator=generator)
        if self.text_projection is not None:
            self.text_projection.weight.copy_(_orthonormal(self.dim, cfg.text_dim, generator))
        # Residuals and attention queries start at zero: the untrained model is pure content.
        for last in (self.item_residual, self.user_residual):
            if last is not None:
                last[-1].weight.zero_()
                last[-1].bias.zero_()
        if self.user_query is not None:
            self.user_query.weight.zero_()
            self.user_query.bias.zero_()
        if self.content_to_ids is not None:
            self.content_to_ids.weight.zero_()
        for param in (self.query, self.empty_history, self.item_bias):
            param.zero_()
        if self.user_attr_out is not None and cfg.text_dim:
            # With text, attributes start silent too; without text they are the only signal.
            self.user_attr_out.weight.zero_()
        for table in (self.item_id, self.user_id):
            if table is not None:
                table.weight.normal_(0.0, cfg.id_init_std, generator=generator)
        self.log_scale.fill_(math.log(cfg.init_scale))
        if self.shrinkage is not None:
            self.shrinkage.fill_(math.log(math.expm1(cfg.history_shrinkage)))  # softplus^-1(kappa)

    @torch.no_grad()
    def set_id_factors(self, user_factors: np.ndarray, item_factors: np.ndarray) -> None:
        """Start the id blocks at given factors (n_users, id_dim) and (n_items, id_dim), e.g. ALS's.

        The id block's dot product is then that factorisation's score; the item id bias stays 0.
        """
        if self.user_id is None or self.item_id is None or not self.id_dim:
            raise ValueError("id factors need user and item ids in their own block (id_dim > 0)")
        for name, table, factors in (("user", self.user_id, user_factors), ("item", self.item_id, item_factors)):
            if factors.shape != (table.num_embeddings, self.id_dim):
                raise ValueError(f"{name} factors {factors.shape} != ({table.num_embeddings}, {self.id_dim})")
        self.user_id.weight.copy_(torch.from_numpy(np.asarray(user_factors, np.float32)))
        self.item_id.weight[:, : self.id_dim] = torch.from_numpy(np.asarray(item_factors, np.float32))

    @torch.no_grad()
    def set_text_whitening(self, mean: np.ndarray, transform: np.ndarray) -> None:
        """Install the fitted text centring (text_dim,) and transform (text_dim, text_dim)."""
        self.text_mean.copy_(torch.from_numpy(np.asarray(mean, np.float32)))
        self.text_transform.copy_(torch.from_numpy(np.asarray(transform, np.float32)))

    # ------------------------------------------------------------------ item tower
    def item_content(self, features: FeatureBatch, text_part: Tensor | None = None) -> Tensor:
        """Content-only item vectors (n, width + 1): what a cold item gets (id block zero).

        `text_part` (n, d + 1) replaces `item_text_part(features)` when the caller cached it.
        """
        content = self.item_text_part(features) if text_part is None else text_part  # (n, d + 1)
        if self.item_residual is not None:
            content = content + self.item_residual(self.item_features(features))
        content = content + nn.functional.pad(self.item_bias, (self.dim, 0))
        return torch.cat([content[:, :-1], torch.zeros(features.n, self.id_dim), content[:, -1:]], dim=1)

    def item_text_part(self, features: FeatureBatch) -> Tensor:
        """The projected, whitened text vectors (n, d + 1) (bias coordinate 0)."""
        if self.text_projection is None or features.text is None:
            return torch.zeros(features.n, self.dim + 1)
        text = (features.text - self.text_mean) @ self.text_transform  # (n, text_dim)
        return nn.functional.pad(self.text_projection(text), (0, 1))

    @property
    def text_part_is_fixed(self) -> bool:
        """True when nothing trainable acts on the text, so its projection can be cached."""
        return self.text_projection is None or not self.text_projection.weight.requires_grad

    def item_id_part(self, index: Tensor) -> Tensor:
        """The id part (n, width + 1) of items by training index; zeros when ids are off."""
        if self.item_id is None:
            return torch.zeros(len(index), self.width + 1)
        part = self.item_id(index)  # (n, id_dim or d, + bias)
        if self.id_dim:
            return torch.cat([torch.zeros(len(index), self.dim), part], dim=1)
        return part

    # ------------------------------------------------------------------ user tower
    def user_vectors(
        self,
        item_table: Tensor,
        history_index: Tensor,
        history_weight: Tensor,
        features: FeatureBatch,
        user_index: Tensor,
        keep_id: Tensor,
    ) -> Tensor:
        """User vectors (B, width + 1).

        `item_table` (C, width + 1) holds item vectors; `history_index` (B, L) points into it and
        `history_weight` (B, L) gives each event's strength (0 marks padding). `keep_id` (B,) is 1
        where the user's id part is used (warm users whose id is not dropped).
        """
        pooled = self.pool(item_table[:, : self.width], history_index, history_weight, features)
        u = pooled  # (B, width)
        if self.content_to_ids is not None:
            u = u + nn.functional.pad(self.content_to_ids(pooled[:, : self.dim]), (self.dim, 0))
        if self.user_residual is not None:
            residual = self.user_residual(pooled[:, : self.dim])  # acts on the content block: (B, d)
            u = u + nn.functional.pad(residual, (0, self.id_dim))
        if self.user_attr is not None and self.user_attr_out is not None:
            u = u + self.user_attr_out(self.user_attr(self.user_features(features)))
        if self.user_id is not None:
            own = keep_id[:, None] * self.user_id(user_index)
            u = u + (nn.functional.pad(own, (self.dim, 0)) if self.id_dim else own)
        scaled = torch.exp(self.log_scale) * u
        return torch.cat([scaled, torch.ones(len(u), 1)], dim=1)

    def pool(
        self, table: Tensor, history_index: Tensor, history_weight: Tensor, features: FeatureBatch
    ) -> Tensor:
        """Pool each user's history into (B, width); users with no history get a learned vector."""
        n_users, length = history_index.shape
        empty = self.empty_history.expand(n_users, -1)
        if length == 0:
            return empty
        present = history_weight > 0  # (B, L)
        has_history = present.any(dim=1)  # (B,)
        history = table[history_index]  # (B, L, width)
        if self.config.attention:
            query = self.query.expand(n_users, -1, -1)  # (B, H, k)
            if self.user_query is not None and self.user_attr is not None:
                hidden = self.user_attr(self.user_features(features))
                query = query + self.user_query(hidden).view(n_users, self.config.n_heads, -1)
            keys = self.key(table)[history_index]  # project the table once, then gather: (B, L, k)
            logits = torch.matmul(query, keys.transpose(1, 2)) / math.sqrt(self.config.key_dim)  # (B, H, L)
            # Event strength enters as a log-prior: attention is proportional to strength·exp(relevance).
            prior = torch.log(history_weight.clamp_min(1e-12))
            logits = logits + prior[:, None, :]
            logits = logits.masked_fill(~present[:, None, :], float("-inf"))
            logits = logits.masked_fill(~has_history[:, None, None], 0.0)  # no NaN rows
            attention = torch.softmax(logits, dim=-1)  # (B, H, L)
            pooled = torch.matmul(attention, history).mean(dim=1)  # (B, H, width) -> (B, width)
        else:
            weights = history_weight / history_weight.sum(dim=1, keepdim=True).clamp_min(1e-12)
            pooled = torch.einsum("bl,bld->bd", weights, history)
        if self.shrinkage is not None:
            # Bayesian-style shrinkage: a user with 1-3 items is mostly the prior, one with 50 is not.
            count = present.sum(dim=1, keepdim=True).float()  # (B, 1)
            kappa = nn.functional.softplus(self.shrinkage)
            trust = count / (count + kappa)
            pooled = trust * pooled + (1.0 - trust) * empty
        return torch.where(has_history[:, None], pooled, empty)

def _orthonormal(rows: int, cols: int, generator: torch.Generator) -> Tensor:
    """The identity when square, else a random matrix with orthonormal rows or columns."""
    if rows == cols:
        return torch.eye(rows)
    gaussian = torch.randn(max(rows, cols), min(rows, cols), generator=generator)
    q, _ = torch.linalg.qr(gaussian)  # (max, min) with orthonormal columns
    return q if rows > cols else q.T
