"""The seed article's model: user-ID and item-ID embeddings -> dense layers -> sigmoid.

Trained with binary cross-entropy on training positives and uniformly sampled negatives (from
items with training interactions), Adam, early stopping on validation Recall@20 of warm users
over warm items. The learning rate 3e-3 is what escapes the popularity plateau within the epoch
budget (1e-3 stalled there and stopped early on MovieLens fold-0 validation). It knows users and items only by ID, so a cold item or user has an embedding
that training never touched: this is the reference that shows why ID-only models fail for new
entities. It ignores scoring-time history (an ID model cannot use a reveal without retraining).

Full ranking stays affordable because the first dense layer over [user; item] is split into a
per-user and a per-item projection, W [u; i] + b = (W_u u + b) + W_i i, computed once each; only
the later layers run per (user, item) pair.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from typing import Self

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from thaw.encoders.base import torch_threads
from thaw.models.base import FitData

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, float, float, float], None]
"""Called as callback(epoch, train_loss, val_recall_at_20, seconds) after every epoch."""


class SeedMLP(nn.Module):
    """ID embeddings -> [dense + ReLU]* -> 1 logit; sigmoid(logit) is the interaction probability."""

    def __init__(self, n_users: int, n_items: int, dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.user_embedding = nn.Embedding(n_users, dim)
        self.item_embedding = nn.Embedding(n_items, dim)
        self.user_proj = nn.Linear(dim, hidden[0])  # first dense layer, user half (+ its bias)
        self.item_proj = nn.Linear(dim, hidden[0], bias=False)  # first dense layer, item half
        layers: list[nn.Module] = []
        for n_in, n_out in zip(hidden, hidden[1:]):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        layers.append(nn.Linear(hidden[-1], 1))
        self.head = nn.Sequential(*layers)

    def reset(self, generator: torch.Generator) -> None:
        """Seeded init: embeddings N(0, 0.05), dense weights Xavier-uniform, biases 0."""
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, 0.05, generator=generator)
            elif isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, generator=generator)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B,) logits for (users[b], items[b])."""
        hidden = self.user_proj(self.user_embedding(users)) + self.item_proj(self.item_embedding(items))
        return self.head(torch.relu(hidden)).squeeze(-1)

    @torch.no_grad()
    def score_all(self, users: torch.Tensor, chunk: int = 16) -> torch.Tensor:
        """(len(users), n_items) logits against every item."""
        per_item = self.item_proj(self.item_embedding.weight)  # (n_items, h)
        per_user = self.user_proj(self.user_embedding(users))  # (b, h)
        out = torch.empty(len(users), per_item.shape[0])
        for start in range(0, len(users), chunk):
            hidden = torch.relu(per_user[start : start + chunk, None, :] + per_item[None, :, :])
            out[start : start + chunk] = self.head(hidden).squeeze(-1)  # (chunk, n_items)
        return out


class SeedMLPRecommender:
    """Fits a `SeedMLP` (see module docstring)."""

    name = "seed"

    def __init__(
        self,
        seed: int = 0,
        dim: int = 32,
        hidden: Sequence[int] = (64, 32),
        n_negatives: int = 4,
        batch_size: int = 1024,
        learning_rate: float = 3e-3,
        l2: float = 0.0,
        max_epochs: int = 20,
        patience: int = 3,
        n_val_users: int = 500,
        n_threads: int = 1,
        callback: EpochCallback | None = None,
    ) -> None:
        self.seed = seed
        self.dim = dim
        self.hidden = hidden
        self.n_negatives = n_negatives
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.l2 = l2
        self.max_epochs = max_epochs
        self.patience = patience
        self.n_val_users = n_val_users
        self.n_threads = n_threads
        self.callback = callback

    def _validate(self) -> None:
        if self.dim < 1 or not self.hidden or min(self.hidden) < 1:
            raise ValueError("dim and every hidden size must be >= 1")
        if self.n_negatives < 1 or self.batch_size < 1 or self.max_epochs < 1:
            raise ValueError("n_negatives, batch_size and max_epochs must be >= 1")
        if self.l2 < 0:
            raise ValueError("l2 must be >= 0")
        if self.learning_rate <= 0 or self.patience < 1 or self.n_val_users < 1 or self.n_threads < 1:
            raise ValueError("learning_rate must be > 0; patience, n_val_users and n_threads >= 1")

    def fit(self, data: FitData) -> Self:
        """Train on positives + sampled negatives; keep the epoch with the best validation recall."""
        self._validate()
        with torch_threads(self.n_threads):
            return self._fit(data)

    def _fit(self, data: FitData) -> Self:
        generator = torch.Generator().manual_seed(self.seed)
        model = SeedMLP(data.n_users, data.n_items, self.dim, tuple(self.hidden))
        model.reset(generator)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.learning_rate)
        train = sp.coo_matrix(data.train)
        positive = train.data > 0
        pos_users = torch.as_tensor(train.row[positive], dtype=torch.long)
        pos_items = torch.as_tensor(train.col[positive], dtype=torch.long)
        negative_pool = torch.as_tensor(np.flatnonzero(data.warm_items), dtype=torch.long)
        if len(pos_users) == 0:
            raise ValueError("the seed model needs training interactions")
        val = self._validation_set(data, generator)
        best, best_state, stale = -1.0, copy.deepcopy(model.state_dict()), 0
        loss_fn = nn.BCEWithLogitsLoss()
        n_neg = self.n_negatives
        for epoch in range(self.max_epochs):
            started = time.perf_counter()
            model.train()
            order = torch.randperm(len(pos_users), generator=generator)
            total = 0.0
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                b = len(idx)
                neg = negative_pool[torch.randint(len(negative_pool), (b * n_neg,), generator=generator)]
                users = torch.cat([pos_users[idx], pos_users[idx].repeat_interleave(n_neg)])
                items = torch.cat([pos_items[idx], neg])
                labels = torch.cat([torch.ones(b), torch.zeros(b * n_neg)])
                loss = loss_fn(model(users, items), labels)
                if self.l2 > 0:  # L2 on the embeddings in this batch only: untouched rows stay as they are
                    loss = loss + self.l2 * (
                        model.user_embedding(users).pow(2).sum(1).mean()
                        + model.item_embedding(items).pow(2).sum(1).mean()
                    )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * b
            recall = self._val_recall(model, data, val) if val is not None else float("nan")
            seconds = time.perf_counter() - started
            log.debug("seed epoch %d loss %.4f val recall@20 %.4f", epoch, total / len(order), recall)
            if self.callback:
                self.callback(epoch, total / len(order), recall, seconds)
            if val is None:
                best_state = copy.deepcopy(model.state_dict())
                continue
            if recall > best:
                best, best_state, stale = recall, copy.deepcopy(model.state_dict()), 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        model.load_state_dict(best_state)
        model.eval()
        self.model_ = model
        self.best_val_recall_ = best
        self.n_epochs_ = epoch + 1
        return self

    def _validation_set(self, data: FitData, generator: torch.Generator) -> np.ndarray | None:
        """Up to n_val_users warm users with validation pairs on warm items (None if none)."""
        if data.validation is None:
            return None
        warm_val = data.validation[:, data.warm_items]
        users = np.flatnonzero((np.diff(warm_val.tocsr().indptr) > 0) & data.warm_users)
        if len(users) == 0:
            return None
        pick = torch.randperm(len(users), generator=generator)[: self.n_val_users].numpy()
        return np.sort(users[pick])

    def _val_recall(self, model: SeedMLP, data: FitData, users: np.ndarray) -> float:
        """Mean Recall@20 of `users`' warm validation items, ranking warm items minus training."""
        model.eval()
        scores = model.score_all(torch.as_tensor(users, dtype=torch.long)).numpy()
        scores[:, ~data.warm_items] = -np.inf
        train = data.train[users].tocsr()
        val = data.validation[users].tocsr()
        recalls = []
        for row in range(len(users)):
            scores[row, train.indices[train.indptr[row] : train.indptr[row + 1]]] = -np.inf
            rel = val.indices[val.indptr[row] : val.indptr[row + 1]]
            rel = rel[data.warm_items[rel]]
            k = min(20, len(scores[row]) - 1)
            top = np.argpartition(-scores[row], k)[: k + 1] if k < 20 else np.argpartition(-scores[row], 20)[:20]
            recalls.append(np.isin(rel, top).sum() / len(rel))
        return float(np.mean(recalls))

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """(len(users), n_items) interaction logits (the sigmoid is monotone, so ranks agree)."""
        users_t = torch.as_tensor(np.asarray(users, np.int64), dtype=torch.long)
        with torch_threads(self.n_threads):
            return self.model_.score_all(users_t).numpy()
