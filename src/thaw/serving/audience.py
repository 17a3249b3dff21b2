"""Who an item would be recommended to: every stored user's vector scored against the item's.

User vectors are built in one batch the way the engine builds one per request (the live model's
user tower over attributes, text and recent history; content similarity when no model is live),
then kept for `max_age_seconds` or until the model changes. A new item needs no rebuild: its
vector enters the index when it is added and is scored against the kept user vectors.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from thaw.data.dataset import EventArrays, UserContent
from thaw.data.records import EVENT_TYPES
from thaw.serving.engine import Engine, NotFoundError
from thaw.serving.index import top_k

BATCH = 1024  # users per encode_users call

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UserVectors:
    """Every stored user's vector in one scoring space, and the items each has seen."""

    source: str  # "model" or "content": the space the vectors live in
    version: str  # the model version they were built with
    user_ids: list[str]
    vectors: np.ndarray  # (n_users, d) float32
    has_signal: np.ndarray  # (n_users,) bool: False when the engine would fall back to popularity
    seen: sp.csr_matrix  # (n_users, n_rows at build time) 1 where the user interacted with the row
    n_history: np.ndarray  # (n_users,) distinct items in the history that shaped the vector
    built_at: float  # time.monotonic() at build


@dataclass(frozen=True)
class AudienceMember:
    """One user the item would be recommended to."""

    user: str
    score: float
    rank: int  # 1 + how many unseen live items the user scores higher than this one
    n_history: int


class Audience:
    """Cached user vectors and the top users for an item."""

    def __init__(self, engine: Engine, *, max_age_seconds: float = 30.0) -> None:
        self.engine = engine
        self.max_age_seconds = max_age_seconds
        self._cached: UserVectors | None = None
        self._lock = threading.Lock()  # held by whoever builds; a background build releases it when done

    def vectors(self) -> UserVectors:
        """The kept vectors: built now when missing or the model changed, rebuilt in the background when old."""
        cached = self._cached
        if cached is None or cached.version != self.engine.model_version:
            with self._lock:
                cached = self._cached
                if cached is None or cached.version != self.engine.model_version:
                    cached = self._cached = build_user_vectors(self.engine)
            return cached
        if time.monotonic() - cached.built_at > self.max_age_seconds:
            self.refresh_in_background()
        return cached

    def refresh_in_background(self) -> None:
        """Start a rebuild unless one is running (the dashboard's overview warms the cache this way)."""
        if not self._lock.acquire(blocking=False):
            return

        def run() -> None:
            try:
                self._cached = build_user_vectors(self.engine)
            except Exception:
                log.exception("building user vectors failed")
            finally:
                self._lock.release()

        threading.Thread(target=run, name="thaw-audience", daemon=True).start()

    def forget(self) -> None:
        """Drop the kept vectors (someone was deleted); the next request rebuilds them without them.

        A rebuild already running when this is called may still hold the person until it ages out
        (`max_age_seconds`).
        """
        self._cached = None

    def warm(self) -> None:
        """Build the vectors in the background if there are none yet."""
        if self._cached is None:
            self.refresh_in_background()

    def top_users(self, item_id: str, k: int) -> tuple[UserVectors, list[AudienceMember]]:
        """The k users scoring `item_id` highest, leaving out those who already interacted with it."""
        engine = self.engine
        row = engine.catalogue.row(item_id)
        if row is None:
            raise NotFoundError("item", [item_id])
        built = self.vectors()
        state = engine.model_state
        index = state.index if built.source == "model" and state is not None else engine.content_index
        item_vector = index.vectors(np.array([row]))[0]  # (d,)
        scores = built.vectors @ item_vector  # (n_users,)
        scores[~built.has_signal] = -np.inf
        if row < built.seen.shape[1]:
            scores[built.seen[:, row].nonzero()[0]] = -np.inf
        users, top = top_k(scores, k)
        matrix = index.matrix()  # (n_index_rows, d)
        alive = engine.catalogue.alive()[: len(matrix)]
        members = []
        for user, score in zip(users.tolist(), top.tolist(), strict=True):
            all_scores = matrix @ built.vectors[user]  # (n_index_rows,)
            candidates = alive.copy()
            seen = built.seen[user].indices
            candidates[seen[seen < len(candidates)]] = False
            rank = 1 + int(np.count_nonzero(all_scores[candidates] > score))
            members.append(AudienceMember(built.user_ids[user], float(score), rank, int(built.n_history[user])))
        return built, members


def build_user_vectors(engine: Engine) -> UserVectors:
    """Every stored user's vector, as `Engine.recommend` would compute it now."""
    catalogue = engine.catalogue
    users = list(engine.store.iter_users())
    position = {u.id: n for n, u in enumerate(users)}
    n_rows = catalogue.n_rows
    owner: list[int] = []
    rows: list[int] = []
    types: list[int] = []
    values: list[float] = []
    type_index = {name: n for n, name in enumerate(EVENT_TYPES)}
    for event in engine.store.iter_events():  # in time order
        n = position.get(event.user)
        row = catalogue.row(event.item)
        if n is None or row is None:
            continue
        owner.append(n)
        rows.append(row)
        types.append(type_index[event.type])
        values.append(np.nan if event.value is None else event.value)
    events = EventArrays(
        np.array(owner, np.int32), np.array(rows, np.int32), np.array(types, np.int8),
        np.array(values, np.float32), np.zeros(len(owner), np.int64),
    )
    history = _history_matrix(engine, events, len(users), n_rows)  # (n_users, n_rows)
    seen = sp.csr_matrix(
        (np.ones(len(events), np.float32), (events.user, events.item)), shape=(len(users), n_rows)
    )
    seen.data[:] = 1.0  # duplicates were summed
    n_history = np.diff(history.indptr)
    attributes = [u.attributes for u in users]
    texts = [u.text or None for u in users]
    has_text = np.array([t is not None for t in texts], bool)
    text_vectors = np.zeros((len(users), engine.encoder.dim), np.float32)
    if has_text.any():
        text_vectors[has_text] = engine.encode_texts([t for t in texts if t is not None])
    ids = [u.id for u in users]
    state = engine.model_state
    if state is not None:
        source, version = "model", state.version
        matrix = state.index.matrix()  # (n_index_rows, d_model)
        has_signal = (n_history > 0) | has_text | np.array([bool(a) for a in attributes], bool)
        model: Any = state.model
    else:
        source, version = "content", "content"
        matrix = engine.content_index.matrix()  # (n_index_rows, d_text)
        has_signal = (n_history > 0) | has_text
        model = engine.content
    history = _fit_width(history, len(matrix))
    vectors = np.zeros((len(users), matrix.shape[1]), np.float32)
    # Users with and without text go in separate calls: the engine passes text vectors only when
    # a person has text, and a model may treat "no text" differently from a zero vector.
    for group in (np.flatnonzero(has_text & has_signal), np.flatnonzero(~has_text & has_signal)):
        for start in range(0, len(group), BATCH):
            chunk = group[start : start + BATCH]
            content = UserContent(
                [attributes[i] for i in chunk],
                [texts[i] for i in chunk],
                text_vectors=text_vectors[chunk] if has_text[chunk[0]] else None,
            )
            if len(matrix):
                encoded = model.encode_users(content, [ids[i] for i in chunk], history[chunk], matrix)
                vectors[chunk] = np.asarray(encoded, np.float32)
    has_signal &= np.any(vectors != 0, axis=1)
    return UserVectors(source, version, ids, vectors, has_signal, seen, n_history, time.monotonic())


def _history_matrix(engine: Engine, events: EventArrays, n_users: int, n_rows: int) -> sp.csr_matrix:
    """(n_users, n_rows): per user, the strongest event weight per item among their recent events.

    Each row's columns are stored in the order the engine's per-request history uses (items by
    their first event among the recent ones), so a model that keeps only the strongest
    `max_history` items breaks ties the same way. The indices are therefore not sorted.
    """
    if not len(events):
        return sp.csr_matrix((n_users, n_rows), dtype=np.float32)
    users = events.user.astype(np.int64)
    # Only each user's `history_limit` most recent events count, as in Engine.profile_of.
    order = np.argsort(users, kind="stable")  # grouped by user, time order kept inside a group
    grouped = users[order]
    ends = np.searchsorted(grouped, np.arange(n_users), side="right")  # one past each user's last event
    from_end = np.empty(len(users), np.int64)  # 0 for a user's latest event, 1 for the one before, ...
    from_end[order] = ends[grouped] - 1 - np.arange(len(users))
    recent = events.subset(from_end < engine.config.history_limit)
    users, rows = recent.user.astype(np.int64), recent.item.astype(np.int64)
    weights = engine.config.weights.of(recent)
    position = np.arange(len(users))  # time order
    # One entry per (user, row): its strongest weight, placed at its first event.
    order = np.lexsort((position, rows, users))
    users, rows, weights, position = users[order], rows[order], weights[order], position[order]
    starts = np.flatnonzero(np.r_[True, (users[1:] != users[:-1]) | (rows[1:] != rows[:-1])])
    strongest = np.maximum.reduceat(weights, starts)
    users, rows, position = users[starts], rows[starts], position[starts]  # first event of each pair
    order = np.lexsort((position, users))
    users, rows, strongest = users[order], rows[order], strongest[order]
    indptr = np.r_[0, np.cumsum(np.bincount(users, minlength=n_users))]
    return sp.csr_matrix((strongest.astype(np.float32), rows, indptr), shape=(n_users, n_rows))


def _fit_width(matrix: sp.csr_matrix, width: int) -> sp.csr_matrix:
    """Columns cut or zero-padded to `width` (an index may hold fewer rows than the catalogue).

    Works entry by entry so each row keeps its column order.
    """
    if matrix.shape[1] == width:
        return matrix
    keep = matrix.indices < width
    row_of = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))[keep]
    indptr = np.r_[0, np.cumsum(np.bincount(row_of, minlength=matrix.shape[0]))]
    return sp.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr), shape=(matrix.shape[0], width))


def describe(built: UserVectors) -> dict[str, Any]:
    """How the kept vectors were made, for the response."""
    return {
        "source": built.source,
        "model_version": built.version,
        "users_scored": int(built.has_signal.sum()),
        "users_total": len(built.user_ids),
        "age_seconds": round(time.monotonic() - built.built_at, 3),
    }
