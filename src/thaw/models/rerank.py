"""Exposure re-ranking: post-process any Recommender's scores so cold items get more top-k slots.

"Cold" means no training interaction (`~FitData.warm_items`, fixed at fit time). Both methods
work per user on the items outside the user's history (history items are never ranked):

- `cold-boost` (strength λ >= 0): s'(u, i) = (s(u, i) − μ_u) / σ_u + λ·[i cold], with μ_u and
  σ_u the mean and standard deviation of u's scores over non-history items (σ_u = 1 when it is
  0). Standardising first makes λ comparable across users and models: it is measured in units
  of the user's own score spread. Users whose best cold items score close to their warm ones get
  many cold items, users with a clear warm preference few.
- `cold-share` (strength ρ in [0, 1], list length k): the top-k list holds at least
  q = min(⌈ρ·k⌉, cold candidates) cold items. When the model's own top-k has fewer, its
  lowest-ranked warm items make room for the best-scored cold items outside it; the new list
  keeps the model's order (kept items first, then the added ones) and is lifted above every
  other item, the rest keep their scores. A guaranteed share per user, as a product rule reads.

Both keep the model's order among cold items and among warm items (up to tied scores), so only
lists that mix the two change; a list's cold count never falls as the strength grows; strength
0 returns the model's scores unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from thaw.models.base import FitData, Recommender

METHODS: tuple[str, ...] = ("cold-boost", "cold-share")
DEFAULT_COLD_SHARE = 0.1
"""ρ of a bare `cold-share`: the largest swept share that kept >= 95% of the un-re-ranked
validation Recall@20 (overall ranking, cold-item) for content-knn, ALS and thaw on MovieLens
100K and CiteULike (docs/benchmarks/fairness.md). No λ is that safe across models, so a bare
`cold-boost` is an error."""


@dataclass(frozen=True)
class RerankSpec:
    """A re-ranking setting: `method` (see module docstring), its `strength` and list length `k`."""

    method: str
    strength: float
    k: int = 20  # cold-share only: the list length the share applies to

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"rerank method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not math.isfinite(self.strength) or self.strength < 0:
            raise ValueError(f"rerank strength must be a finite number >= 0, got {self.strength}")
        if self.method == "cold-share" and self.strength > 1:
            raise ValueError(f"cold-share is a share of the list, in [0, 1]; got {self.strength}")
        if self.k < 1:
            raise ValueError(f"rerank k must be >= 1, got {self.k}")

    @classmethod
    def parse(cls, text: str) -> RerankSpec:
        """`cold-boost=1.5`, `cold-share=0.2`, `cold-share=0.2,k=10`; bare `cold-share` is ρ = 0.1."""
        head, *rest = [part.strip() for part in text.split(",")]
        method, sep, value = head.partition("=")
        if not sep and method.strip() == "cold-share":
            sep, value = "=", str(DEFAULT_COLD_SHARE)
        if not sep:
            raise ValueError(f"rerank {text!r}: expected METHOD=STRENGTH[,k=K], e.g. cold-share=0.2")
        k = 20
        for part in rest:
            key, sep, val = part.partition("=")
            if key.strip() != "k" or not sep:
                raise ValueError(f"rerank {text!r}: unknown setting {part!r} (only k=K)")
            k = _number(val, text, int)
        return cls(method.strip(), _number(value, text, float), k)

    @property
    def label(self) -> str:
        """The spec as text (what `parse` reads)."""
        suffix = f",k={self.k}" if self.method == "cold-share" and self.k != 20 else ""
        return f"{self.method}={self.strength:g}{suffix}"


def _number(text: str, spec: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"rerank {spec!r}: {text!r} is not a number") from None


def as_spec(value: RerankSpec | str | None) -> RerankSpec | None:
    """A RerankSpec from a spec, its text, or None / "none" (no re-ranking)."""
    if value is None or isinstance(value, RerankSpec):
        return value
    return None if value.strip().lower() in ("", "none") else RerankSpec.parse(value)


class ExposureReranker:
    """Wraps a Recommender; its scores are re-ranked for cold-item exposure (module docstring).

    With `prefit=True`, `fit` leaves the wrapped model alone (it is already fitted on the same
    data) and only records which items are cold.
    """

    def __init__(
        self,
        model: Recommender,
        method: str = "cold-boost",
        strength: float = 0.0,
        k: int = 20,
        prefit: bool = False,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.method = method
        self.strength = strength
        self.k = k
        self.prefit = prefit
        self.seed = seed

    @classmethod
    def from_spec(cls, model: Recommender, spec: RerankSpec | str, **options: Any) -> ExposureReranker:
        """A wrapper around `model` with the setting `spec` (a RerankSpec or its text)."""
        parsed = as_spec(spec)
        if parsed is None:
            raise ValueError("no re-ranking spec given")
        return cls(model, parsed.method, parsed.strength, parsed.k, **options)

    @property
    def name(self) -> str:
        spec = RerankSpec(self.method, float(self.strength), int(self.k))
        return f"{self.model.name}+{spec.label}"

    def fit(self, data: FitData) -> Self:
        """Fit the wrapped model (unless `prefit`) and remember which items are cold."""
        self.spec_ = RerankSpec(self.method, float(self.strength), int(self.k))
        if not self.prefit:
            self.model.fit(data)
        self.cold_items_ = ~np.asarray(data.warm_items, bool)
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """(len(users), n_items) the wrapped model's scores, re-ranked."""
        scores = self.model.score(users, history)
        spec = self.spec_
        if spec.strength == 0:
            return scores
        if np.shape(scores)[1] != len(self.cold_items_):
            raise ValueError(
                f"{self.model.name} scored {np.shape(scores)[1]} items, fitted on {len(self.cold_items_)}"
            )
        if spec.method == "cold-boost":
            return boost_cold(scores, history, self.cold_items_, spec.strength)
        return reserve_cold_slots(
            scores, history, self.cold_items_, spec.strength, spec.k, users=users, seed=self.seed
        )


def _history_mask(history: sp.csr_matrix, shape: tuple[int, int]) -> np.ndarray:
    """(b, n_items) True where the item is in the user's history."""
    coo = sp.coo_matrix(history)
    if coo.shape != shape:
        raise ValueError(f"history has shape {coo.shape}, scores {shape}")
    seen = np.zeros(shape, bool)
    seen[coo.row, coo.col] = True
    return seen


def boost_cold(
    scores: np.ndarray, history: sp.csr_matrix, is_cold: np.ndarray, strength: float
) -> np.ndarray:
    """(b, n_items) float64: per-user standardised scores plus `strength` on cold items."""
    s = np.asarray(scores, np.float64)
    free = ~_history_mask(history, s.shape)  # (b, n_items) rankable items
    n_free = np.maximum(free.sum(axis=1, keepdims=True), 1)
    mean = np.where(free, s, 0.0).sum(axis=1, keepdims=True) / n_free
    std = np.sqrt((np.where(free, s - mean, 0.0) ** 2).sum(axis=1, keepdims=True) / n_free)
    std = np.where(std > 0, std, 1.0)
    return (s - mean) / std + strength * np.asarray(is_cold, np.float64)[None, :]


def reserve_cold_slots(
    scores: np.ndarray,
    history: sp.csr_matrix,
    is_cold: np.ndarray,
    share: float,
    k: int,
    *,
    users: np.ndarray,
    seed: int = 0,
) -> np.ndarray:
    """(b, n_items) float64 scores whose top k holds >= min(⌈share·k⌉, cold candidates) cold items.

    Ties in the model's scores are broken by a seeded random order per (seed, user).
    """
    s = np.array(scores, np.float64)  # a copy: rows are rewritten in place
    free = ~_history_mask(history, s.shape)
    is_cold = np.asarray(is_cold, bool)
    target = math.ceil(share * k - 1e-9)
    for row in range(s.shape[0]):
        tiebreak = _Tiebreak(seed, int(users[row]), s.shape[1])
        top = _best(s[row], free[row], k, tiebreak)
        n_cold = int(is_cold[top].sum())
        cold_free = free[row] & is_cold
        need = min(target, int(cold_free.sum()), len(top)) - n_cold
        if need <= 0:
            continue
        cold_free[top] = False
        extra = _best(s[row], cold_free, need, tiebreak)  # the best cold items outside the list
        warm_in_top = top[~is_cold[top]]
        drop = warm_in_top[len(warm_in_top) - len(extra) :]  # the lowest-ranked warm items
        new_list = np.concatenate([top[~np.isin(top, drop)], extra])
        base = float(s[row].max())
        step = max(1.0, abs(base))  # lifts stay distinct in float64 whatever the score scale
        s[row, new_list] = base + step * (len(new_list) - np.arange(len(new_list)))
    return s


class _Tiebreak:
    """Seeded random keys of one user's items (lower wins), drawn only when a tie needs them."""

    def __init__(self, seed: int, user: int, n_items: int) -> None:
        self.seed, self.user, self.n_items = seed, user, n_items
        self._keys: np.ndarray | None = None

    @property
    def keys(self) -> np.ndarray:
        if self._keys is None:
            self._keys = np.random.default_rng([self.seed, self.user, 0xC01D]).random(self.n_items)
        return self._keys


def _best(scores: np.ndarray, mask: np.ndarray, m: int, tiebreak: _Tiebreak) -> np.ndarray:
    """The (up to) m best items of `mask` by (score desc, tiebreak asc), best first."""
    idx = np.flatnonzero(mask)
    if m <= 0 or len(idx) == 0:
        return np.zeros(0, np.int64)
    vals = scores[idx]
    if len(idx) > m:
        threshold = np.partition(vals, len(idx) - m)[len(idx) - m]  # the m-th largest
        above = idx[vals > threshold]
        tied = idx[vals == threshold]
        if len(above) + len(tied) > m:  # a tie at the boundary: the tiebreak picks
            keys = tiebreak.keys[tied]
            tied = tied[np.argsort(keys, kind="stable")[: m - len(above)]]
        idx = np.concatenate([above, tied])
    vals = scores[idx]
    if len(np.unique(vals)) < len(vals):
        return idx[np.lexsort((tiebreak.keys[idx], -vals))]
    return idx[np.argsort(-vals)]
