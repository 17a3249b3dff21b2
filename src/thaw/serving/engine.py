"""The serving engine: live catalogue vectors, user vectors from the store, a fallback chain.

Sources, in order: the trained model (when one is loaded), content similarity, popularity. A
list is filled from the first source that has a signal for the person, then topped up by the
next; every result says which source served it. About `exploration.share` of the slots go to
low-exposure items chosen by Thompson sampling. Users' vectors are rebuilt from their stored
events on every request, so an event counts on the very next request without retraining.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from thaw.data.dataset import EventArrays, ItemContent, UserContent
from thaw.data.records import EVENT_TYPES, EventRecord, ImpressionRecord, ItemRecord, WriteResult, now_utc
from thaw.data.store import Store
from thaw.models.base import EmbeddingModel
from thaw.serving.catalogue import Catalogue
from thaw.serving.config import ServeConfig
from thaw.serving.content import ContentSimilarity, normalise
from thaw.serving.chain import explore, fill
from thaw.serving.exploration import ImpressionLog
from thaw.serving.index import ExactIndex
from thaw.serving.ranking import Profile, Reason, Scored, explain_rows

log = logging.getLogger(__name__)

SOURCES = ("model", "content", "popularity", "exploration")


class NotFoundError(LookupError):
    """An id the store or the catalogue does not know."""

    def __init__(self, kind: str, ids: Sequence[str]) -> None:
        self.kind = kind
        self.ids = list(ids)
        super().__init__(f"unknown {kind} id(s): {', '.join(repr(i) for i in self.ids[:5])}")


@dataclass(frozen=True)
class ModelState:
    """The live trained model with its item vectors; replaced whole, never edited."""

    version: str
    model: EmbeddingModel
    index: ExactIndex
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RecommendationList:
    """A served list, the request id its impressions are logged under, and the model version."""

    items: list[Scored]
    request_id: str
    model_version: str


class Engine:
    """Everything a request needs, shared by all requests of one server process."""

    def __init__(self, store: Store, encoder: Any, config: ServeConfig) -> None:
        self.store = store
        self.encoder = encoder
        self.config = config
        self.catalogue = Catalogue()
        self.content = ContentSimilarity()
        self.content_index = ExactIndex(encoder.dim)
        self.model_state: ModelState | None = None
        self.impressions = ImpressionLog(store.add_impressions, config.impression_flush_seconds)
        self._requests = itertools.count()
        self._counts_dirty = threading.Event()
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self.counts_refreshed_at = 0.0

    # ------------------------------------------------------------------ lifecycle
    def load(self) -> None:
        """Read and encode the whole catalogue, then the counters behind popularity and exploration."""
        started = time.perf_counter()
        batch: list[ItemRecord] = []
        for record in self.store.iter_items():
            batch.append(record)
            if len(batch) == 5000:
                self._index_items(batch)
                batch = []
        self._index_items(batch)
        self.refresh_counts()
        log.info(
            "catalogue loaded",
            extra={"items": len(self.catalogue), "seconds": round(time.perf_counter() - started, 3)},
        )

    def start(self) -> None:
        """Start the impression writer and the counter refresher."""
        if self.config.log_impressions:
            self.impressions.start()
        self._refresher = threading.Thread(target=self._refresh_loop, name="thaw-counts", daemon=True)
        self._refresher.start()

    def stop(self) -> None:
        """Stop background threads and write pending impressions."""
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=10)
        self.impressions.stop()

    def _refresh_loop(self) -> None:
        # Exact counts come back from the store every `stats_refresh_seconds`, or within a second
        # when a batch held duplicates (then local increments could not be trusted).
        while not self._stop.wait(1.0):
            stale = time.monotonic() - self.counts_refreshed_at > self.config.stats_refresh_seconds
            if self._counts_dirty.is_set() or stale:
                try:
                    if stale and self.config.workers > 1:
                        self.sync_catalogue()
                    self.refresh_counts()
                except Exception:
                    log.exception("count refresh failed")

    # ------------------------------------------------------------------ model
    @property
    def model_version(self) -> str:
        state = self.model_state
        return state.version if state is not None else "content"

    def set_model(self, model: EmbeddingModel | None, version: str, metrics: dict[str, float]) -> None:
        """Encode the live catalogue with `model` and swap it in atomically (None: content only)."""
        if model is None:
            self.model_state = None
            return
        with self.catalogue.lock:
            live = self.catalogue.live_items()
            index = ExactIndex(1, capacity=1)
            if live:
                records = {r.id: r for r in self.store.get_items([v.id for v in live])}
                views = [v for v in live if v.id in records]
                content = self._item_content([records[v.id] for v in views])
                vectors = np.asarray(model.encode_items(content, [v.id for v in views]), np.float32)
                index = ExactIndex(vectors.shape[1], capacity=self.catalogue.n_rows)
                index.add(np.array([v.row for v in views], np.int64), vectors)
            self.model_state = ModelState(version, model, index, dict(metrics))
        log.info("model swapped in", extra={"version": version, "items": len(index)})

    # ------------------------------------------------------------------ catalogue
    def _item_content(self, records: list[ItemRecord]) -> ItemContent:
        content = ItemContent([r.title for r in records], [r.text for r in records], [r.attributes for r in records])
        vectors = self.encode_texts(content.documents())
        return ItemContent(content.titles, content.texts, content.attributes, text_vectors=vectors)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Pretrained vectors of texts, through the store's embedding cache: (n, dim) float32."""
        if not texts:
            return np.zeros((0, self.encoder.dim), np.float32)
        from thaw.encoders.cache import encode_cached

        return np.asarray(encode_cached(self.encoder, texts, self.store), np.float32)

    def _index_items(self, records: list[ItemRecord]) -> None:
        if not records:
            return
        content = self._item_content(records)
        ids = [r.id for r in records]
        content_vectors = self.content.encode_items(content, ids)
        with self.catalogue.lock:
            rows = self.catalogue.assign(ids, [r.title for r in records])
            self.content_index.add(rows, content_vectors)
            state = self.model_state
            if state is not None:
                state.index.add(rows, np.asarray(state.model.encode_items(content, ids), np.float32))
            self.catalogue.activate(rows)

    def add_items(self, records: list[ItemRecord]) -> WriteResult:
        """Store items, then encode and index them: recommendable when this returns."""
        result = self.store.upsert_items(records)
        self._index_items(records)
        return result

    def update_item(self, item_id: str, fields: dict[str, Any]) -> ItemRecord:
        """Change some of an item's fields and re-encode it."""
        if fields and not self.store.update_item(item_id, **fields):
            raise NotFoundError("item", [item_id])
        found = self.store.get_items([item_id])
        if not found:
            raise NotFoundError("item", [item_id])
        self._index_items(found)
        return found[0]

    def delete_item(self, item_id: str) -> None:
        """Remove an item from the store and from every index."""
        if not self.store.delete_item(item_id):
            raise NotFoundError("item", [item_id])
        with self.catalogue.lock:
            row = self.catalogue.remove(item_id)
            if row is not None:
                self.content_index.remove(np.array([row]))
                state = self.model_state
                if state is not None:
                    state.index.remove(np.array([row]))

    # ------------------------------------------------------------------ events and counters
    def add_events(self, records: list[EventRecord]) -> WriteResult:
        """Append events (idempotent by key) and update popularity and click counts."""
        result = self.store.add_events(records)
        if result.unchanged:
            self._counts_dirty.set()  # which ones were duplicates is unknown: recount from the store
            return result
        rows = self.catalogue.rows([e.item for e in records])
        if len(rows) == len(records):
            weights = self._event_weights(records)
            clicks = np.array([e.type in self.config.exploration.click_types for e in records], np.float64)
            with self.catalogue.lock:
                self.catalogue.popularity.add(rows, weights)
                self.catalogue.clicks.add(rows, clicks)
        return result

    def _event_weights(self, records: Sequence[EventRecord]) -> np.ndarray:
        n = len(records)
        arrays = EventArrays(
            np.zeros(n, np.int32),
            np.zeros(n, np.int32),
            np.array([EVENT_TYPES.index(e.type) for e in records], np.int8),
            np.array([np.nan if e.value is None else e.value for e in records], np.float32),
            np.zeros(n, np.int64),
        )
        return self.config.weights.of(arrays).astype(np.float64)

    def sync_catalogue(self) -> tuple[int, int]:
        """Index items other workers added and drop those they deleted: (added, removed)."""
        stored = {r.id: r for r in self.store.iter_items()}
        new = [r for i, r in stored.items() if i not in self.catalogue]
        gone = [v.id for v in self.catalogue.live_items() if v.id not in stored]
        self._index_items(new)
        with self.catalogue.lock:
            for item_id in gone:
                row = self.catalogue.remove(item_id)
                if row is not None:
                    self.content_index.remove(np.array([row]))
                    state = self.model_state
                    if state is not None:
                        state.index.remove(np.array([row]))
        return len(new), len(gone)

    def mark_counts_stale(self) -> None:
        """Ask the refresher to recount from the store within a second (after deletes, say)."""
        self._counts_dirty.set()

    def refresh_counts(self) -> None:
        """Recount popularity, clicks and impressions from the store (exact; also syncs workers)."""
        self._counts_dirty.clear()
        if self.config.log_impressions:
            self.impressions.flush()
        weights = self.config.weights
        totals = self.store.event_totals()
        shown = self.store.impression_counts()
        with self.catalogue.lock:
            n = self.catalogue.n_rows
            popularity = np.zeros(n)
            clicks = np.zeros(n)
            impressions = np.zeros(n)
            for item, type_, count, value_sum in totals:
                row = self.catalogue.row(item)
                if row is None:
                    continue
                if type_ == "rating":
                    popularity[row] += weights.rating * min(value_sum / weights.max_rating, count)
                else:
                    popularity[row] += getattr(weights, type_, 0.0) * count
                if type_ in self.config.exploration.click_types:
                    clicks[row] += count
            for item, count in shown.items():
                row = self.catalogue.row(item)
                if row is not None:
                    impressions[row] = count
            all_rows = np.arange(n)
            self.catalogue.popularity.set(all_rows, popularity)
            self.catalogue.clicks.set(all_rows, clicks)
            self.catalogue.impressions.set(all_rows, impressions)
        self.counts_refreshed_at = time.monotonic()

    # ------------------------------------------------------------------ people
    def profile_of(self, user_id: str) -> Profile:
        """A stored user's attributes, text and recent history as catalogue rows and strengths."""
        users = self.store.get_users([user_id])
        if not users:
            raise NotFoundError("user", [user_id])
        user = users[0]
        recent: deque[EventRecord] = deque(maxlen=self.config.history_limit)
        seen: set[str] = set()
        for event in self.store.iter_events(user=user_id):
            recent.append(event)
            seen.add(event.item)
        rows, strengths = self._history(list(recent))
        return Profile(user_id, user.attributes, user.text, rows, strengths, self.catalogue.rows(sorted(seen)))

    def profile_new(self, attributes: dict[str, Any], liked: list[str], text: str | None) -> Profile:
        """Someone not stored: attributes, a few liked items (each a purchase-strength signal), text."""
        missing = [i for i in liked if i not in self.catalogue]
        if missing:
            raise NotFoundError("item", missing)
        rows = self.catalogue.rows(list(dict.fromkeys(liked)))
        strengths = np.full(len(rows), self.config.weights.purchase, np.float32)
        return Profile(None, attributes, text, rows, strengths, rows)

    def _history(self, events: list[EventRecord]) -> tuple[np.ndarray, np.ndarray]:
        # Each item keeps its strongest event, as in the training matrix.
        live = [e for e in events if e.item in self.catalogue]
        if not live:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        weights = self._event_weights(live)
        best: dict[int, float] = {}
        for event, weight in zip(live, weights, strict=True):
            row = self.catalogue.row(event.item)
            if row is not None and weight > best.get(row, -1.0):
                best[row] = float(weight)
        rows = np.fromiter(best.keys(), np.int64, len(best))
        return rows, np.fromiter(best.values(), np.float32, len(best))

    # ------------------------------------------------------------------ recommendations
    def recommend(self, profile: Profile, k: int, *, exclude_seen: bool = True, explain: bool = False) -> RecommendationList:
        """The top k for a profile through the fallback chain, with exploration slots."""
        exclude = profile.seen if exclude_seen else np.empty(0, np.int64)
        state = self.model_state
        queries = self._queries(profile, state)
        request_id = uuid.uuid4().hex
        rng = np.random.default_rng([self.config.exploration.seed, next(self._requests)])
        computed: dict[str, np.ndarray] = {}
        served = fill(self, queries, k, exclude, state, computed)
        served = explore(self, served, queries, k, exclude, state, rng, computed)
        items = [
            Scored(
                self.catalogue.id_of(row),
                self.catalogue.title_of(row),
                score,
                source,
                explain_rows(self, profile, row, source, state, extra) if explain else None,
            )
            for row, score, source, extra in served
        ]
        self._log_impressions(items, profile.user, request_id)
        return RecommendationList(items, request_id, state.version if state else "content")

    def similar(self, item_id: str, k: int, *, explain: bool = False) -> RecommendationList:
        """Items closest to `item_id` (model space, else content), topped up by popularity."""
        row = self.catalogue.row(item_id)
        if row is None:
            raise NotFoundError("item", [item_id])
        state = self.model_state
        queries: list[tuple[str, np.ndarray | None]] = []
        if state is not None:
            queries.append(("model", state.index.vectors(np.array([row]))[0]))
        queries.append(("content", self.content_index.vectors(np.array([row]))[0]))
        served = fill(self, queries, k, np.array([row]), state)
        anchor = Profile(None, {}, None, np.array([row]), np.ones(1, np.float32), np.array([row]))
        items = [
            Scored(
                self.catalogue.id_of(r),
                self.catalogue.title_of(r),
                score,
                source,
                explain_rows(self, anchor, r, source, state, extra) if explain else None,
            )
            for r, score, source, extra in served
        ]
        return RecommendationList(items, uuid.uuid4().hex, state.version if state else "content")

    def _queries(self, profile: Profile, state: ModelState | None) -> list[tuple[str, np.ndarray | None]]:
        """(source, user vector or None when the source has no signal), in fallback order."""
        out: list[tuple[str, np.ndarray | None]] = []
        has_history = len(profile.rows) > 0
        text_vector = self.encode_texts([profile.text]) if profile.text else None  # (1, d)
        if state is not None:
            vector = None
            if has_history or profile.attributes or profile.text:
                # Only the history's own item vectors go in: column j of `history` is row j of
                # `matrix`. A model that projects its whole item table per call (attention keys)
                # then costs O(history), not O(catalogue).
                inside = profile.rows < len(state.index.matrix())
                rows, strengths = profile.rows[inside], profile.strengths[inside]
                matrix = state.index.vectors(rows)  # (h, d_model)
                history = sp.csr_matrix(strengths[None, :].astype(np.float32)) if len(rows) else sp.csr_matrix((1, 0), dtype=np.float32)
                content = UserContent([profile.attributes], [profile.text], text_vectors=text_vector)
                vector = np.asarray(
                    state.model.encode_users(content, [profile.user or ""], history, matrix), np.float32
                )[0]
            out.append(("model", vector))
        vector = None
        if has_history or text_vector is not None:
            history_vectors = self.content_index.vectors(profile.rows)  # (h, d)
            content = UserContent([profile.attributes], [profile.text], text_vectors=text_vector)
            history = sp.csr_matrix(profile.strengths[None, :]) if has_history else sp.csr_matrix((1, 0), dtype=np.float32)
            vector = self.content.encode_users(content, ["" if profile.user is None else profile.user], history, history_vectors)[0]
            vector = None if not np.any(vector) else vector
        out.append(("content", vector))
        return out

    def _log_impressions(self, items: list[Scored], user: str | None, request_id: str) -> None:
        if not items:
            return
        rows = self.catalogue.rows([s.item for s in items])
        with self.catalogue.lock:
            self.catalogue.impressions.add(rows, 1.0)
        if self.config.log_impressions:
            now = now_utc()
            self.impressions.add(
                [ImpressionRecord(s.item, position, s.source, request_id, now, user) for position, s in enumerate(items)]
            )
