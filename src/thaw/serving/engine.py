"""The serving engine: live catalogue vectors, user vectors from the store, a fallback chain.

Sources, in order: the trained model (when one is loaded), content similarity, popularity. A
list is filled from the first source that has a signal for the person, then topped up by the
next; every result says which source served it. About `exploration.share` of the slots go to
low-exposure items chosen by Thompson sampling. A user's history is checked against the store on
every request (people.py), so an event counts on the very next request without retraining.

Indexes are exact below `ann_threshold` live items and FAISS HNSW from there on. Items other
workers write reach this one through the store's change log (sync.py).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thaw.data.dataset import ItemContent
from thaw.data.records import EventRecord, ItemRecord, WriteResult
from thaw.data.store import Store
from thaw.models.base import EmbeddingModel
from thaw.serving.adaptive import index_from_matrix
from thaw.serving.background import Background
from thaw.serving.catalogue import Catalogue, fingerprint
from thaw.serving.chain import RecommendationList, recommend, similar
from thaw.serving.config import ServeConfig
from thaw.serving.content import ContentSimilarity
from thaw.serving.counts import Counters
from thaw.serving.exploration import ImpressionLog
from thaw.serving.generated import GeneratedCandidates
from thaw.serving.index import VectorIndex
from thaw.serving.people import NotFoundError, People
from thaw.serving.queries import queries_for
from thaw.serving.ranking import Profile
from thaw.serving.sync import ChangeFeed
from thaw.serving.kept_ranks import KeptRanks
from thaw.serving.user_cache import KeptPerUser, UserVectorCache

log = logging.getLogger(__name__)

SOURCES = ("model", "content", "popularity", "exploration")
LOAD_BATCH = 5000
__all__ = ["Engine", "ModelState", "NotFoundError", "RecommendationList", "SOURCES"]


@dataclass(frozen=True)
class ModelState:
    """The live trained model with its item vectors; replaced whole, never edited."""

    version: str
    model: EmbeddingModel
    index: VectorIndex
    metrics: dict[str, float] = field(default_factory=dict)
    user_vectors: UserVectorCache = field(default_factory=lambda: UserVectorCache(0))  # stored users' vectors
    user_ranks: KeptPerUser[KeptRanks] = field(default_factory=lambda: KeptPerUser(0))  # their ranked lists
    item_ranks: KeptPerUser[KeptRanks] = field(default_factory=lambda: KeptPerUser(0))  # items' similar items


class Engine:
    """Everything a request needs, shared by all requests of one server process."""

    def __init__(self, store: Store, encoder: Any, config: ServeConfig) -> None:
        self.store = store
        self.encoder = encoder
        self.config = config
        self.catalogue = Catalogue()
        self.content = ContentSimilarity()
        self.content_index = self._index_of(np.zeros((0, encoder.dim), np.float32), np.zeros(0, bool))
        self.model_state: ModelState | None = None
        self.impressions = ImpressionLog(store.add_impressions, config.impression_flush_seconds)
        self.counters = Counters(store, self.catalogue, config, self.impressions)
        self.people = People(store, self.catalogue, config, self.encode_texts)
        self.generated = GeneratedCandidates(store, config.exploration)
        self.feed = ChangeFeed(store, self.reconcile_items)
        self._requests = itertools.count()
        self.background = Background(self)
        self._swap_lock = threading.Lock()
        # Item writes of this worker and replays of others' are applied one at a time, each reading
        # the store and updating the indexes as one step: a replay that read an item just before a
        # local delete can then not put it back.
        self._item_writes = threading.RLock()
        self._model_writes: list[tuple[str, np.ndarray, ItemContent | None, list[str]]] | None = None

    def _index_of(self, matrix: np.ndarray, alive: np.ndarray) -> VectorIndex:
        config = self.config
        return index_from_matrix(matrix, alive, ann_threshold=config.ann_threshold, **config.hnsw_options)

    # ------------------------------------------------------------------ lifecycle
    def load(self) -> None:
        """Read and encode the whole catalogue, index it, then count popularity and exposure."""
        started = time.perf_counter()
        position = self.store.last_change()  # changes from here on are replayed (idempotently)
        rows: list[np.ndarray] = []
        vectors: list[np.ndarray] = []
        batch: list[ItemRecord] = []
        for record in itertools.chain(self.store.iter_items(), [None]):
            if record is not None:
                batch.append(record)
            if batch and (record is None or len(batch) == LOAD_BATCH):
                content = self._item_content(batch)
                ids = [r.id for r in batch]
                vectors.append(self.content.encode_items(content, ids))
                rows.append(self.catalogue.assign(ids, content.titles, _prints(batch)))
                batch = []
        matrix = np.zeros((self.catalogue.n_rows, self.encoder.dim), np.float32)  # (n_rows, d_text)
        alive = np.zeros(self.catalogue.n_rows, bool)
        for chunk_rows, chunk in zip(rows, vectors, strict=True):
            matrix[chunk_rows] = chunk
            alive[chunk_rows] = True
        self.content_index = self._index_of(matrix, alive)
        self.catalogue.activate(np.flatnonzero(alive))
        self.feed.start_at(position)
        self.counters.refresh()
        self.people.refresh_rating_scale()
        self.generated.refresh()
        self.encoder.encode(["warm-up"])  # a lazily loaded encoder loads now, not in the first POST /items
        log.info(
            "catalogue loaded",
            extra={"items": len(self.catalogue), "seconds": round(time.perf_counter() - started, 3)},
        )

    def start(self) -> None:
        """Start the impression writer and the background threads (background.py)."""
        if self.config.log_impressions:
            self.impressions.start()
        self.background.start()

    def stop(self) -> None:
        """Stop background threads and write pending impressions."""
        self.background.stop()
        self.impressions.stop()

    # ------------------------------------------------------------------ model
    @property
    def model_version(self) -> str:
        state = self.model_state
        return state.version if state is not None else "content"

    def set_model(self, model: EmbeddingModel | None, version: str, metrics: dict[str, float]) -> None:
        """Encode the live catalogue with `model` and swap it in atomically (None: content only).

        The catalogue is encoded and indexed without holding its lock (HNSW builds of big
        catalogues take a while); writes made meanwhile are replayed into the new index before
        the swap.
        """
        if model is None:
            self.model_state = None
            return
        with self._swap_lock:
            with self.catalogue.lock:
                live = self.catalogue.live_items()
                n_rows = self.catalogue.n_rows
                self._model_writes = []
            try:
                index = self._encode_catalogue(model, live, n_rows)
                with self.catalogue.lock:
                    for op, rows, content, ids in self._model_writes:
                        if op == "add" and content is not None:
                            index.add(rows, np.asarray(model.encode_items(content, ids), np.float32))
                        else:
                            index.remove(rows)
                    kept = self.config.history_cache_users
                    self.model_state = ModelState(
                        version, model, index, dict(metrics), UserVectorCache(kept), KeptPerUser(kept), KeptPerUser(kept)
                    )
            finally:
                self._model_writes = None
        self.background.model_swapped()
        log.info("model swapped in", extra={"version": version, "items": len(index)})

    def _encode_catalogue(self, model: EmbeddingModel, live: list[Any], n_rows: int) -> VectorIndex:
        vectors: list[np.ndarray] = []
        rows: list[int] = []
        for start in range(0, len(live), LOAD_BATCH):
            views = live[start : start + LOAD_BATCH]
            records = {r.id: r for r in self.store.get_items([v.id for v in views])}
            views = [v for v in views if v.id in records]
            if views:
                content = self._item_content([records[v.id] for v in views])
                vectors.append(np.asarray(model.encode_items(content, [v.id for v in views]), np.float32))
                rows.extend(v.row for v in views)
        dim = vectors[0].shape[1] if vectors else self._model_dim(model)
        matrix = np.zeros((n_rows, dim), np.float32)  # (n_rows, d_model)
        alive = np.zeros(n_rows, bool)
        if vectors:
            matrix[rows] = np.concatenate(vectors)
            alive[rows] = True
        return self._index_of(matrix, alive)

    def _model_dim(self, model: EmbeddingModel) -> int:
        """Length of the model's item vectors, known before any item is (an empty catalogue)."""
        dim = getattr(model, "dim", None)
        if isinstance(dim, int) and dim > 0:
            return dim
        probe = self._item_content([ItemRecord("", "")])
        return int(np.asarray(model.encode_items(probe, [""])).shape[1])

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
        """Encode and index items whose content differs from what the catalogue holds."""
        prints = _prints(records)
        fresh = {r.id: (r, p) for r, p in zip(records, prints, strict=True) if self.catalogue.fingerprint_of(r.id) != p}
        if not fresh:
            return
        records = [r for r, _ in fresh.values()]
        changed = any(self.catalogue.fingerprint_of(r.id) is not None for r in records)  # re-encoded in place
        content = self._item_content(records)
        ids = [r.id for r in records]
        content_vectors = self.content.encode_items(content, ids)
        with self.catalogue.lock:
            state = self.model_state
            rows = self.catalogue.assign(ids, content.titles, [p for _, p in fresh.values()])
            self.content_index.add(rows, content_vectors)
            if state is not None:
                state.index.add(rows, np.asarray(state.model.encode_items(content, ids), np.float32))
                if changed:
                    state.user_vectors.clear()  # kept user vectors pooled the old item vectors
            if self._model_writes is not None:
                self._model_writes.append(("add", rows, content, ids))
            self.catalogue.activate(rows)

    def _unindex(self, item_ids: list[str]) -> int:
        """Drop items from the catalogue and every index; returns how many were live."""
        with self.catalogue.lock:
            removed = [row for row in (self.catalogue.remove(i) for i in item_ids) if row is not None]
            if removed:
                rows = np.array(removed, np.int64)
                self.content_index.remove(rows)
                state = self.model_state
                if state is not None:
                    state.index.remove(rows)
                if self._model_writes is not None:
                    self._model_writes.append(("remove", rows, None, []))
        if removed:
            self.generated.forget_items(item_ids)  # the store dropped their generated events too
            self.counters.forget_rows(rows)  # the store deleted their events and impressions
        return len(removed)

    def add_items(self, records: list[ItemRecord]) -> WriteResult:
        """Store items, then encode and index them: recommendable when this returns."""
        with self._item_writes:
            result = self.store.upsert_items(records)
            self._index_items(records)
        return result

    def update_item(self, item_id: str, fields: dict[str, Any]) -> ItemRecord:
        """Change some of an item's fields and re-encode it."""
        with self._item_writes:
            if fields and not self.store.update_item(item_id, **fields):
                raise NotFoundError("item", [item_id])
            found = self.store.get_items([item_id])
            if not found:
                raise NotFoundError("item", [item_id])
            self._index_items(found)
        return found[0]

    def delete_item(self, item_id: str) -> None:
        """Remove an item from the store and from every index."""
        with self._item_writes:
            if not self.store.delete_item(item_id):
                raise NotFoundError("item", [item_id])
            self._unindex([item_id])

    def reconcile_items(self, item_ids: list[str]) -> None:
        """Bring these items in line with the store: index new or changed ones, drop deleted ones."""
        with self._item_writes:
            stored = {r.id: r for r in self.store.get_items(item_ids)}
            self._unindex([i for i in item_ids if i not in stored])
            self._index_items([stored[i] for i in item_ids if i in stored])

    def sync_catalogue(self) -> tuple[int, int]:
        """Reconcile the whole catalogue with the store (the change log's safety net): (added, removed)."""
        with self._item_writes:
            stored = {r.id: r for r in self.store.iter_items()}
            added = sum(1 for i in stored if i not in self.catalogue)
            removed = self._unindex([v.id for v in self.catalogue.live_items() if v.id not in stored])
            self._index_items(list(stored.values()))
        return added, removed

    def catch_up(self) -> None:
        """Apply other workers' changes now (an id this worker does not know may have just been added)."""
        self.feed.poll()

    # ------------------------------------------------------------------ events and counters
    def add_events(self, records: list[EventRecord]) -> WriteResult:
        """Append events (idempotent by key) and update popularity and click counts."""
        return self.counters.add_events(records)

    def mark_counts_stale(self) -> None:
        """Ask the background thread to recount from the store within a second (after deletes, say)."""
        self.counters.dirty.set()

    def refresh_counts(self) -> None:
        """Recount popularity, clicks and impressions from every stored row now, and re-read generated candidates."""
        self.counters.refresh(full=True)
        self.generated.refresh()

    def drop_generated(self, items: list[str] | None = None) -> int:
        """Delete generated events (of `items`, or all) and stop exploring them here at once; how many."""
        return self.generated.drop(items)

    # ------------------------------------------------------------------ people
    def profile_of(self, user_id: str) -> Profile:
        """A stored user's attributes, text and recent history as catalogue rows and strengths."""
        return self.people.profile_of(user_id)

    @property
    def rating_scale(self) -> tuple[float, float]:
        """(lowest, highest) rating a new person may give (people.py: refresh_rating_scale)."""
        return self.people.rating_scale

    def profile_new(
        self, attributes: dict[str, Any], liked: list[str], text: str | None, rated: list[tuple[str, float]] | None = None
    ) -> Profile:
        """Someone not stored: attributes, liked and rated items, text (unknown items: NotFoundError)."""
        try:
            return self.people.profile_new(attributes, liked, text, rated)
        except NotFoundError:
            self.catch_up()  # perhaps another worker just added them
            return self.people.profile_new(attributes, liked, text, rated)

    @property
    def warming_up(self) -> bool:
        """Whether stored users' model vectors are being computed ahead right now."""
        return self.background.warming_up

    @property
    def warmed_users(self) -> int:
        """Stored users whose model vector the last warm-up computed."""
        return self.background.warmed_users

    # ------------------------------------------------------------------ recommendations
    def recommend(self, profile: Profile, k: int, *, exclude_seen: bool = True, explain: bool = False) -> RecommendationList:
        """The top k for a profile through the fallback chain, with exploration slots."""
        return recommend(self, profile, k, exclude_seen=exclude_seen, explain=explain)

    def similar(self, item_id: str, k: int, *, explain: bool = False) -> RecommendationList:
        """Items closest to `item_id` (model space, else content), topped up by popularity."""
        row = self.catalogue.row(item_id)
        if row is None:
            self.catch_up()  # perhaps another worker just added it
            row = self.catalogue.row(item_id)
            if row is None:
                raise NotFoundError("item", [item_id])
        return similar(self, row, k, explain=explain)

    def _queries(self, profile: Profile, state: ModelState | None) -> list[tuple[str, np.ndarray | None]]:
        """(source, user vector or None when the source has no signal), in fallback order."""
        return list(queries_for(self, profile, state))

    @property
    def counts_refreshed_at(self) -> float:
        """When popularity and exposure were last recounted from the store (time.monotonic)."""
        return self.counters.refreshed_at


def _prints(records: list[ItemRecord]) -> list[str]:
    return [fingerprint(r.title, r.text, r.attributes) for r in records]
