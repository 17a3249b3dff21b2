"""A person's query vector in each source: the trained model's user tower, and content similarity.

Both are built from the profile's history rows (their own item vectors only, never the whole
catalogue), attributes and text vector. A source without any signal for the person gets None.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from thaw.data.dataset import UserContent
from thaw.serving.ranking import Profile

if TYPE_CHECKING:
    from thaw.serving.engine import Engine, ModelState


class Queries:
    """The person's vector in each source, in fallback order, each computed on first use."""

    def __init__(self, sources: list[tuple[str, Callable[[], np.ndarray | None]]]) -> None:
        self.sources = [source for source, _ in sources]
        self._make = dict(sources)
        self._vectors: dict[str, np.ndarray | None] = {}

    def vector(self, source: str) -> np.ndarray | None:
        if source not in self._vectors:
            self._vectors[source] = self._make[source]()
        return self._vectors[source]

    def __iter__(self) -> Iterator[tuple[str, np.ndarray | None]]:
        for source in self.sources:
            yield source, self.vector(source)

    def primary(self) -> tuple[str, np.ndarray] | None:
        """The first source with a vector."""
        return next(((s, v) for s, v in self if v is not None), None)


def _history(strengths: np.ndarray) -> sp.csr_matrix:
    """(1, h) strengths as the CSR row encode_users takes (column j is the history's row j)."""
    h = len(strengths)
    history = sp.csr_matrix(
        (np.asarray(strengths, np.float32), np.arange(h, dtype=np.int32), np.array([0, h], np.int32)), shape=(1, h)
    )
    history.eliminate_zeros()  # a zero-strength event is no signal
    return history


def text_vector_of(engine: Engine, profile: Profile) -> np.ndarray | None:
    """The profile's pretrained text vector (1, d), or None without text."""
    if not profile.text:
        return None
    if profile.text_vector is not None:
        return profile.text_vector
    return engine.encode_texts([profile.text])


def model_vector(engine: Engine, profile: Profile, state: ModelState) -> np.ndarray | None:
    """The trained model's user vector (d_model,), or None with neither history, attributes nor text."""
    if not (len(profile.rows) or profile.attributes or profile.text):
        return None
    # Only the history's own item vectors go in: column j of `history` is row j of `matrix`. A
    # model that projects its whole item table per call (attention keys) then costs O(history).
    inside = profile.rows < len(state.index.matrix())
    rows, strengths = profile.rows[inside], profile.strengths[inside]
    matrix = state.index.vectors(rows)  # (h, d_model)
    content = UserContent([profile.attributes], [profile.text], text_vectors=text_vector_of(engine, profile))
    vector = state.model.encode_users(content, [profile.user or ""], _history(strengths), matrix)
    return np.asarray(vector, np.float32)[0]


def content_vector(engine: Engine, profile: Profile) -> np.ndarray | None:
    """The content-similarity user vector (d_text,), or None with neither history nor text."""
    text = text_vector_of(engine, profile)
    if not len(profile.rows) and text is None:
        return None
    history_vectors = engine.content_index.vectors(profile.rows)  # (h, d)
    content = UserContent([profile.attributes], [profile.text], text_vectors=text)
    vector = engine.content.encode_users(content, [profile.user or ""], _history(profile.strengths), history_vectors)[0]
    return vector if np.any(vector) else None


def queries_for(engine: Engine, profile: Profile, state: ModelState | None) -> Queries:
    """(source, vector) in fallback order, each vector computed only when the chain needs it."""
    sources = []
    if state is not None:
        sources.append(("model", lambda: model_vector(engine, profile, state)))
    sources.append(("content", lambda: content_vector(engine, profile)))
    return Queries(sources)
