"""What a recommendation is made of: the person's profile, scored results, and their reasons."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from thaw.serving.engine import Engine, ModelState

N_REASON_ITEMS = 3


@dataclass(frozen=True)
class Profile:
    """Who a list is for: attributes, text and history as catalogue rows with strengths."""

    user: str | None
    attributes: dict[str, Any]
    text: str | None
    rows: np.ndarray  # (h,) int64 catalogue rows of the recent history
    strengths: np.ndarray  # (h,) float32 strongest event weight per row
    seen: np.ndarray  # (s,) int64 rows of every item the person interacted with
    text_vector: np.ndarray | None = None  # (1, d) pretrained vector of `text`, when already encoded
    version: tuple[int, int, int] | None = None  # a stored user's history key (people.py); None if not stored


@dataclass(frozen=True)
class Reason:
    """Why an item was served: history items, attributes, or a sentence for other sources."""

    items: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    detail: str = ""


@dataclass(frozen=True)
class Scored:
    """One served item: its score in the serving source's own scale, the source, a reason."""

    item: str
    title: str
    score: float
    source: str
    reason: Reason | None = None


def explain_rows(
    engine: Engine, profile: Profile, row: int, source: str, state: ModelState | None, extra: Any
) -> Reason:
    """The reason behind serving `row` to `profile` from `source`."""
    catalogue = engine.catalogue
    if source == "exploration":
        return Reason(detail=extra.detail())  # an ExplorationPick (thaw.serving.exploration)
    if source == "popularity":
        count = float(catalogue.popularity.view(catalogue.n_rows)[row])
        return Reason(detail=f"popular: {count:.1f} weighted interactions")
    if len(profile.rows):
        index = state.index if source == "model" and state is not None else engine.content_index
        n = len(index.matrix())
        rows, strengths = profile.rows[profile.rows < n], profile.strengths[profile.rows < n]
        if len(rows):
            # Contribution of each history item: strength * similarity to the served item.
            contribution = strengths * (index.vectors(rows) @ index.vectors(np.array([row]))[0])
            order = np.argsort(-contribution, kind="stable")[:N_REASON_ITEMS]
            items = [catalogue.id_of(int(rows[i])) for i in order if contribution[i] > 0]
            titles = [catalogue.title_of(int(rows[i])) for i in order if contribution[i] > 0]
            if items:
                space = "the model's item space" if source == "model" else "content"
                return Reason(items=items, detail=f"close in {space} to: " + "; ".join(titles))
    if source == "model" and profile.attributes:
        return Reason(attributes=dict(profile.attributes), detail="predicted from attributes")
    if profile.text:
        return Reason(detail="similar to the person's own text")
    return Reason(detail=f"served by {source}")
