"""Exploration for items with little exposure: Thompson sampling on their click rate.

Each low-exposure item's click rate has a Beta posterior, Beta(prior_clicks + clicks,
prior_misses + impressions - clicks). For a list of k, about `share * k` slots go to the
low-exposure items among the user's most relevant `pool` items that draw the highest click
rate from their posterior. Impressions are buffered and written to the store by a background
thread; clicks come from click events.

A user's generated candidates (new items the generated feedback names for them, see
thaw.serving.generated) are considered first: those still low-exposure take the slots, in the
order of their own Thompson draws, before the relevance pool fills what is left.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from thaw.data.records import ImpressionRecord
from thaw.serving.config import ExplorationConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExplorationPick:
    """A row chosen to explore, with the draw and the counts behind it."""

    row: int
    draw: float
    impressions: int
    clicks: int
    generated: float | None = None  # the confidence of the user's generated pair, if it came from one

    def detail(self) -> str:
        """Why this row was explored, for `explain=true`."""
        counts = f"{self.impressions} impressions, {self.clicks} clicks; sampled click rate {self.draw:.3f}"
        if self.generated is not None:
            return (
                f"exploring a new item that generated feedback suggests for this user "
                f"(confidence {self.generated:.3f}, not real data): {counts}"
            )
        return f"exploring an item with little exposure: {counts}"


def n_explore_slots(share: float, k: int, rng: np.random.Generator) -> int:
    """How many of k slots explore: share*k rounded up or down at random, so the mean is exact."""
    expected = share * k
    whole = int(np.floor(expected))
    return min(k, whole + int(rng.random() < expected - whole))


def explore_positions(n_slots: int, k: int) -> list[int]:
    """Where explored items go in a list of k: spread evenly over the lower part, never first."""
    if n_slots <= 0:
        return []
    start = min(k - n_slots, max(1, k // 3))
    span = k - start
    return sorted({start + (j * span) // n_slots + (span // n_slots) // 2 for j in range(n_slots)})


def thompson_pick(
    candidates: np.ndarray,
    impressions: np.ndarray,
    clicks: np.ndarray,
    n: int,
    config: ExplorationConfig,
    rng: np.random.Generator,
    confidence: np.ndarray | None = None,
) -> list[ExplorationPick]:
    """Draw a click rate for each candidate row from its Beta posterior; keep the n highest draws.

    `impressions` and `clicks` are per-catalogue-row counts (indexed by `candidates`). Generated
    candidates come with the `confidence` of their generated pairs, which the picks carry and which
    breaks equal draws (the more confident first). It never enters the posterior: a generated pair
    is a guess, not an observed click, so a generated item its users leave unclicked draws low
    like any other.
    """
    if n <= 0 or len(candidates) == 0:
        return []
    if confidence is not None:
        order = np.argsort(-np.asarray(confidence, np.float64), kind="stable")
        candidates, confidence = np.asarray(candidates)[order], np.asarray(confidence, np.float64)[order]
    shown = impressions[candidates]
    clicked = np.minimum(clicks[candidates], shown)  # clicks without logged impressions still count
    alpha = config.prior_clicks + clicked
    beta = config.prior_misses + np.maximum(shown - clicked, 0.0)
    draws = rng.beta(alpha, beta)
    best = np.argsort(-draws, kind="stable")[:n]  # equal draws: the earlier candidate
    return [
        ExplorationPick(
            int(candidates[i]),
            float(draws[i]),
            int(shown[i]),
            int(clicks[candidates[i]]),
            None if confidence is None else float(confidence[i]),
        )
        for i in best
    ]


class ImpressionLog:
    """Buffers impressions in memory and writes them to the store every `interval` seconds."""

    def __init__(self, write: Callable[[list[ImpressionRecord]], int], interval: float) -> None:
        self._write = write
        self._interval = interval
        self._buffer: list[ImpressionRecord] = []
        self._lock = threading.Lock()  # guards the buffer; adds never wait for a write
        self._writing = threading.Lock()  # one flush at a time: a flush returns after the one before it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0

    def add(self, impressions: list[ImpressionRecord]) -> None:
        with self._lock:
            self._buffer.extend(impressions)

    def flush(self) -> int:
        """Write what is buffered now; returns rows written (a failed write is logged and dropped).

        When it returns, every impression added before the call is in the store, even one a
        background flush had taken and was still writing (a recount right after relies on it).
        """
        with self._writing:
            with self._lock:
                batch, self._buffer = self._buffer, []
            if not batch:
                return 0
            try:
                n = self._write(batch)
            except Exception:  # the impression log must never take the server down
                log.exception("impression flush failed", extra={"dropped": len(batch)})
                return 0
            self.written += n
            return n

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="thaw-impressions", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def stop(self) -> None:
        """Stop the thread and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()
