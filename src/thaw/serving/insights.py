"""Read-only views for the dashboard: growth over time, attribute summaries, evaluation reports.

Plain functions over the store and the file system; the routes in `routes/explore.py` wrap them
in response models and cache the slow ones.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from thaw.data.store import Store

MAX_SUMMARY_ROWS = 20_000  # users/items read to summarise attributes (the first ones stored)
MAX_CATEGORIES = 40  # most frequent values kept per categorical attribute


@dataclass(frozen=True)
class Growth:
    """Cumulative counts at each time point: users, items and real events seen up to then."""

    times: list[datetime]
    users: list[int]
    items: list[int]
    events: list[int]


def growth(store: Store, n_points: int) -> Growth:
    """Counts over time at `n_points` evenly spaced moments from the first to the last activity.

    A user or an item counts from when it was created or first interacted with, whichever came
    first (an imported history keeps its original dates); an event counts from its timestamp.
    """
    if n_points < 2:
        raise ValueError(f"n_points must be >= 2, got {n_points}")
    user_times, item_times = store.first_seen()
    span = store.event_span()
    moments = list(user_times) + list(item_times) + (list(span) if span else [])
    if not moments:
        return Growth([], [], [], [])
    start, end = min(moments), max(moments)
    if end <= start:
        end = start + timedelta(seconds=1)
    step = (end - start) / (n_points - 1)
    times = [start + step * n for n in range(n_points)]
    times[-1] = end  # no rounding drift: the last point holds everything
    # Interval edges for the store's range counts: (-inf, t0], (t0, t1], ...
    edges = [start - timedelta(seconds=1)] + times
    per_interval = store.event_counts(edges) if span else [0] * n_points
    return Growth(
        times,
        _cumulative(user_times, times),
        _cumulative(item_times, times),
        [int(v) for v in np.cumsum(per_interval)],
    )


def _cumulative(moments: list[datetime], times: list[datetime]) -> list[int]:
    stamps = np.sort(np.array([m.timestamp() for m in moments], np.float64))
    points = np.array([t.timestamp() for t in times], np.float64)
    return [int(v) for v in np.searchsorted(stamps, points, side="right")]


@dataclass(frozen=True)
class AttributeSummary:
    """What values one attribute takes across users (or items)."""

    name: str
    kind: str  # "categorical", "list" (each value is a list of categories) or "numeric"
    count: int  # rows that have the attribute
    distinct: int
    values: list[tuple[str, int]] = field(default_factory=list)  # most frequent first
    minimum: float | None = None
    maximum: float | None = None


def summarise_attributes(rows: Iterable[dict[str, Any]], limit: int = MAX_SUMMARY_ROWS) -> tuple[int, list[AttributeSummary]]:
    """(rows read, one summary per attribute name, most common attributes first)."""
    seen: dict[str, list[Any]] = {}
    n = 0
    for attributes in rows:
        if n >= limit:
            break
        n += 1
        for name, value in attributes.items():
            if value is not None:
                seen.setdefault(name, []).append(value)
    out = [_summary(name, values) for name, values in seen.items()]
    out.sort(key=lambda s: (-s.count, s.name))
    return n, out


def _summary(name: str, values: list[Any]) -> AttributeSummary:
    numeric = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numeric) == len(values) and all(math.isfinite(v) for v in numeric):
        distinct = len(set(numeric))
        counts = Counter(_label(v) for v in numeric) if distinct <= MAX_CATEGORIES else Counter()
        return AttributeSummary(
            name, "numeric", len(values), distinct, counts.most_common(MAX_CATEGORIES),
            float(min(numeric)), float(max(numeric)),
        )
    if all(isinstance(v, list) for v in values):
        counts = Counter(_label(x) for v in values for x in v)
        return AttributeSummary(name, "list", len(values), len(counts), counts.most_common(MAX_CATEGORIES))
    counts = Counter(_label(v) for v in values)
    return AttributeSummary(name, "categorical", len(values), len(counts), counts.most_common(MAX_CATEGORIES))


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class EvaluationFile:
    """One `thaw evaluate --json` report found beside a model, or why it could not be read."""

    file: str
    report: dict[str, Any] | None
    error: str | None = None


def evaluation_reports(directory: Path | None) -> list[EvaluationFile]:
    """Every `<directory>/evaluation/*.json`, sorted by name, checked for the report's shape."""
    if directory is None:
        return []
    folder = Path(directory) / "evaluation"
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        name = f"evaluation/{path.name}"
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            out.append(EvaluationFile(name, _checked_report(document)))
        except (OSError, ValueError) as exc:
            out.append(EvaluationFile(name, None, f"{type(exc).__name__}: {exc}"))
    return out


def _checked_report(document: Any) -> dict[str, Any]:
    """The fields the dashboard shows; ValueError naming the first field that is wrong."""
    if not isinstance(document, dict):
        raise ValueError("a report must be a JSON object")
    for key, kind in (("scenario", str), ("folds", int), ("results", list)):
        if not isinstance(document.get(key), kind):
            raise ValueError(f"field {key!r} must be a {kind.__name__}")
    results = []
    for n, result in enumerate(document["results"]):
        if not isinstance(result, dict) or not isinstance(result.get("model"), str):
            raise ValueError(f"results[{n}].model must be a string")
        metrics = result.get("metrics")
        if not isinstance(metrics, dict):
            raise ValueError(f"results[{n}].metrics must be an object")
        checked = {}
        for metric, summary in metrics.items():
            if not isinstance(summary, dict):
                raise ValueError(f"results[{n}].metrics[{metric!r}] must be an object with mean, std, per_fold")
            checked[str(metric)] = {
                "mean": _number(summary.get("mean")),
                "std": _number(summary.get("std")),
                "per_fold": [_number(v) for v in summary.get("per_fold") or []],
            }
        results.append(
            {"model": result["model"], "metrics": checked, "fit_seconds": _number(result.get("fit_seconds"))}
        )
    return {
        "scenario": document["scenario"],
        "folds": document["folds"],
        "dataset": str(document.get("dataset") or ""),
        "encoder": str(document.get("encoder") or ""),
        "primary_ranking": str(document.get("primary_ranking") or ""),
        "results": results,
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)
