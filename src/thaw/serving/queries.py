"""A person's query vector in each source: the trained model's user tower, and content similarity.

Both are built from the profile's history rows (their own item vectors only, never the whole
catalogue), attributes and text vector. A source without any signal for the person gets None.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from thaw.data.dataset import UserContent
from thaw.serving.people import NotFoundError
from thaw.serving.ranking import Profile
from thaw.serving.user_cache import key_of

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


def _history(strengths: list[np.ndarray]) -> sp.csr_matrix:
    """(n, h_total) CSR of n people's strengths as encode_users takes it: person i's histories follow
    person i-1's, so column j is row j of their histories' stacked item vectors."""
    lengths = [len(s) for s in strengths]
    total = sum(lengths)
    values = np.concatenate(strengths).astype(np.float32) if strengths else np.empty(0, np.float32)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    history = sp.csr_matrix((values, np.arange(total, dtype=np.int32), indptr), shape=(len(strengths), total))
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
    """The trained model's user vector (d_model,), or None with neither history, attributes nor text.

    A stored user's vector is kept between requests under everything it depends on (user_cache.py).
    """
    if not (len(profile.rows) or profile.attributes or profile.text):
        return None
    key = key_of(profile)
    if key is not None and profile.user is not None:
        kept = state.user_vectors.get(profile.user, key)
        if kept is not None:
            return kept
    vector = model_vectors(engine, [profile], state)[0]
    if key is not None and profile.user is not None:
        state.user_vectors.put(profile.user, key, vector)
    return vector


def model_vectors(engine: Engine, profiles: list[Profile], state: ModelState) -> np.ndarray:
    """The user tower over several profiles at once: (n, d_model) float32.

    Only the histories' own item vectors go in: column j of the history matrix is row j of the
    stacked item vectors. A model that projects its whole item table per call (attention keys)
    then costs O(history), not O(catalogue).
    """
    n_index = len(state.index.matrix())
    inside = [p.rows < n_index for p in profiles]  # rows added after this model's index was read wait
    rows = np.concatenate([p.rows[keep] for p, keep in zip(profiles, inside, strict=True)])
    history = _history([p.strengths[keep] for p, keep in zip(profiles, inside, strict=True)])
    matrix = state.index.vectors(rows)  # (h_total, d_model)
    texts = [p.text for p in profiles]
    vectors = [text_vector_of(engine, p) for p in profiles]
    text_vectors = None
    if any(v is not None for v in vectors):
        dim = next(v for v in vectors if v is not None).shape[1]
        text_vectors = np.concatenate([np.zeros((1, dim), np.float32) if v is None else v for v in vectors])
    content = UserContent([p.attributes for p in profiles], texts, text_vectors=text_vectors)
    users = [p.user or "" for p in profiles]
    return np.asarray(state.model.encode_users(content, users, history, matrix), np.float32)


def warm_user_vectors(engine: Engine, state: ModelState, limit: int, stop: Callable[[], bool], batch: int = 256) -> int:
    """Keep the model vectors of up to `limit` stored users, `batch` at a time, until `stop()`; how many.

    A vector a request computed meanwhile is left as it is.
    """
    done = 0
    users = itertools.islice(engine.store.iter_users(), limit)
    while not stop():
        profiles = []
        for record in itertools.islice(users, batch):
            try:
                profiles.append(engine.people.profile_of(record.id))
            except NotFoundError:
                continue  # deleted meanwhile
        if not profiles:
            break
        for profile, vector in zip(profiles, model_vectors(engine, profiles, state), strict=True):
            key = key_of(profile)
            if key is not None and profile.user is not None:
                state.user_vectors.put(profile.user, key, vector, if_absent=True)
                rank_ahead(engine, state, profile, state.user_vectors.get(profile.user, key))
        done += len(profiles)
    return done


def rank_ahead(engine: Engine, state: ModelState, profile: Profile, vector: np.ndarray | None) -> None:
    """Keep the ranked list a default request of this stored user will read (kept_ranks.py)."""
    if vector is None or profile.user is None:
        return
    from thaw.serving.chain import default_prefetch, kept_rows, searches_for

    prefetch = default_prefetch(engine, engine.config.default_k, len(profile.seen))
    kept = (state.user_ranks, profile.user, kept_rows(prefetch))
    search = searches_for(engine, state, prefetch, kept)("model", vector)
    if search.keeper is not None and search.keeper.get() is None:
        search.ranked(prefetch)


def content_vector(engine: Engine, profile: Profile) -> np.ndarray | None:
    """The content-similarity user vector (d_text,), or None with neither history nor text."""
    text = text_vector_of(engine, profile)
    if not len(profile.rows) and text is None:
        return None
    history_vectors = engine.content_index.vectors(profile.rows)  # (h, d)
    content = UserContent([profile.attributes], [profile.text], text_vectors=text)
    vector = engine.content.encode_users(content, [profile.user or ""], _history([profile.strengths]), history_vectors)[0]
    return vector if np.any(vector) else None


def queries_for(engine: Engine, profile: Profile, state: ModelState | None) -> Queries:
    """(source, vector) in fallback order, each vector computed only when the chain needs it."""
    sources = []
    if state is not None:
        sources.append(("model", lambda: model_vector(engine, profile, state)))
    sources.append(("content", lambda: content_vector(engine, profile)))
    return Queries(sources)
