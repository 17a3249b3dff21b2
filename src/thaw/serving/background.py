"""The engine's background threads: the change log and resync, recounts, the user-vector warm-up.

- `thaw-sync` polls the store's change log (other workers' item writes), reconciles the whole
  catalogue every `resync_seconds` and prunes old change rows.
- `thaw-counts` recounts popularity and exposure when asked or due. A full recount reads every
  event, so it runs apart and never holds up the change log.
- `thaw-warm` computes stored users' model vectors ahead after each model load.

After the warm-up the garbage collector freezes what is alive (settle_garbage).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from thaw.data.records import now_utc
from thaw.serving.queries import warm_user_vectors

if TYPE_CHECKING:
    from thaw.serving.engine import Engine, ModelState

log = logging.getLogger(__name__)

PRUNE_SECONDS = 60.0


class Background:
    """Starts, runs and stops the threads of one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._warmer: threading.Thread | None = None
        self.warmed_users = 0  # stored users whose model vector the last warm-up computed
        self.resynced_at = self.pruned_at = time.monotonic()

    @property
    def running(self) -> bool:
        return bool(self._threads)

    def start(self) -> None:
        settle_garbage()
        for target, name in ((self._sync, "thaw-sync"), (self._recount, "thaw-counts")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self.start_warming()

    def stop(self) -> None:
        self.stopping.set()
        for thread in [*self._threads, self._warmer]:
            if thread is not None:
                thread.join(timeout=10)

    def model_swapped(self) -> None:
        """A model swapped in while serving: the old one goes, the new one's users are warmed."""
        if self.running:
            settle_garbage()
            self.start_warming()

    # ------------------------------------------------------------------ the warm-up
    @property
    def warming_up(self) -> bool:
        return self._warmer is not None and self._warmer.is_alive()

    def start_warming(self) -> None:
        engine = self.engine
        state = engine.model_state
        if state is None or engine.config.warm_users == 0 or engine.config.history_cache_users == 0:
            return
        self._warmer = threading.Thread(target=self.warm_user_vectors, args=(state,), name="thaw-warm", daemon=True)
        self._warmer.start()

    def warm_user_vectors(self, state: ModelState) -> int:
        """Compute stored users' model vectors ahead (queries.warm_user_vectors); how many."""
        engine = self.engine
        started = time.perf_counter()
        limit = min(engine.config.warm_users, engine.config.history_cache_users)
        done = warm_user_vectors(engine, state, limit, lambda: self.stopping.is_set() or engine.model_state is not state)
        self.warmed_users = done
        settle_garbage()  # the histories and vectors just made are long-lived: no collection rescans them
        log.info("user vectors computed ahead", extra={"users": done, "seconds": round(time.perf_counter() - started, 3)})
        return done

    # ------------------------------------------------------------------ the loops
    def _sync(self) -> None:
        engine = self.engine
        config = engine.config
        while not self.stopping.wait(min(config.sync_seconds, 1.0)):
            try:
                now = time.monotonic()
                if now - engine.feed.polled_at >= config.sync_seconds:
                    engine.feed.poll()
                if now - self.resynced_at > config.resync_seconds:
                    self.resynced_at = now
                    engine.sync_catalogue()
                if now - self.pruned_at > PRUNE_SECONDS:
                    self.pruned_at = now
                    engine.store.prune_changes(now_utc() - timedelta(seconds=config.change_retention_seconds))
            except Exception:
                log.exception("background sync failed")

    def _recount(self) -> None:
        engine = self.engine
        while not self.stopping.is_set():
            engine.counters.dirty.wait(1.0)  # wakes at once when a recount is asked for
            if self.stopping.is_set():
                break
            try:
                if engine.counters.due():
                    engine.counters.refresh()
                    engine.people.refresh_rating_scale()
                    engine.generated.refresh()
            except Exception:
                log.exception("background recount failed")
                self.stopping.wait(1.0)


def settle_garbage() -> None:
    """Collect once, then exempt every object alive now (catalogue, model, encoder) from collection.

    A full collection over the half a million objects a loaded server holds took 250 ms (CiteULike
    with its model), often enough to set the p99 latency; frozen objects are no longer scanned.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
