"""Model versions: the checkpoint served at start, background retraining, and the swap rule.

A retrained model replaces the live one only when training finished, it was evaluated, and its
`train_metric` is not worse than the live model's on the same held-out data (within
`train_tolerance`). A failed or worse training is recorded and never served.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from thaw.data.records import now_utc
from thaw.data.store import Store
from thaw.models.base import EmbeddingModel
from thaw.serving.config import ServeConfig

log = logging.getLogger(__name__)

STATUSES = ("live", "retired", "training", "rejected", "failed")


@dataclass(frozen=True)
class TrainOutcome:
    """What a trainer hands back: the model, its validation metrics, and a scorer for any model.

    `evaluate(model)` computes the same metrics on the same held-out data, so the live model can
    be measured on equal terms; None when the trainer cannot do that.
    """

    model: EmbeddingModel
    metrics: dict[str, float]
    evaluate: Callable[[EmbeddingModel], dict[str, float]] | None = None
    save: Callable[[Path], None] | None = None


Trainer = Callable[[Store, Callable[[dict[str, Any]], None]], TrainOutcome]


@dataclass(frozen=True)
class ModelVersion:
    """One entry of GET /admin/models."""

    version: str
    status: str
    created_at: datetime
    origin: str  # "content" (no trained model), "checkpoint" or "retrain"
    path: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    detail: str = ""
    progress: dict[str, Any] = field(default_factory=dict)


class TrainingBusyError(RuntimeError):
    """A training run is already going."""


def load_checkpoint(path: Path) -> tuple[EmbeddingModel, dict[str, float]]:
    """A trained model from a `thaw train` directory and the validation metrics it carries."""
    from thaw.serving.retrain import metrics_of
    from thaw.training import checkpoint

    model = checkpoint.load(path)
    return model, metrics_of(model)


class ModelRegistry:
    """Versions known to this server and the background retraining job."""

    def __init__(self, engine: Any, config: ServeConfig, trainer: Trainer) -> None:
        self.engine = engine
        self.config = config
        self.trainer = trainer
        self._versions: list[ModelVersion] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def versions(self) -> list[ModelVersion]:
        with self._lock:
            return list(self._versions)

    def live(self) -> ModelVersion | None:
        return next((v for v in self.versions() if v.status == "live"), None)

    def _record(self, version: ModelVersion) -> None:
        with self._lock:
            self._versions = [v for v in self._versions if v.version != version.version] + [version]

    def _set_status(self, name: str, **changes: Any) -> None:
        with self._lock:
            self._versions = [replace(v, **changes) if v.version == name else v for v in self._versions]

    def load_initial(self, model: EmbeddingModel | None = None, metrics: dict[str, float] | None = None) -> None:
        """Serve `model` (or the checkpoint at config.model_dir, or content similarity only)."""
        path = self.config.model_dir
        if model is None:
            self._record(ModelVersion("content", "live", now_utc(), "content", detail="no trained model"))
            return
        name = f"{getattr(model, 'name', 'model')}-{path.name if path else 'given'}"
        self.engine.set_model(model, name, metrics or {})
        self._record(
            ModelVersion(name, "live", now_utc(), "checkpoint", str(path) if path else None, dict(metrics or {}))
        )

    def _publish(self, path: Path | None) -> None:
        """Log the new version's location so the other workers on this store adopt it too."""
        if path is not None:
            self.engine.store.record_change("model", str(path))
        elif self.config.workers > 1:
            log.warning("retrained model not saved (no models_dir): the other workers keep their model")

    def adopt(self, path: str) -> None:
        """Serve the version another worker trained and saved at `path` (unless it is live here)."""
        live = self.live()
        if live is not None and live.path == path:
            return
        model, metrics = load_checkpoint(Path(path))
        name = Path(path).name
        self.engine.set_model(model, name, metrics)
        with self._lock:
            self._versions = [replace(v, status="retired") if v.status == "live" else v for v in self._versions]
            self._versions = [v for v in self._versions if v.version != name]
            self._versions.append(
                ModelVersion(name, "live", now_utc(), "checkpoint", path, dict(metrics), detail="trained by another worker")
            )
        log.info("adopted a model trained by another worker", extra={"version": name})

    def start_training(self) -> ModelVersion:
        """Start a retraining run in a background thread; TrainingBusyError if one is running."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise TrainingBusyError("a training run is already in progress")
            name = f"retrain-{time.strftime('%Y%m%d-%H%M%S')}-{len(self._versions)}"
            version = ModelVersion(name, "training", now_utc(), "retrain")
            self._versions.append(version)
            self._thread = threading.Thread(target=self._train, args=(name,), name="thaw-train", daemon=True)
            self._thread.start()
        return version

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running training (if any) ends."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _train(self, name: str) -> None:
        try:
            outcome = self.trainer(self.engine.store, lambda info: self._set_status(name, progress=dict(info)))
            metric = self.config.train_metric
            new_metrics = dict(outcome.metrics)
            live_state = self.engine.model_state
            if outcome.evaluate is not None:
                new_metrics.update(outcome.evaluate(outcome.model))
                live_model = live_state.model if live_state is not None else self.engine.content
                live_score = outcome.evaluate(live_model).get(metric)
            else:
                live_score = live_state.metrics.get(metric) if live_state is not None else None
            new_score = new_metrics.get(metric)
            if new_score is None:
                self._set_status(name, status="rejected", metrics=new_metrics, detail=f"no {metric} to compare")
                return
            if live_score is not None and new_score < live_score - self.config.train_tolerance:
                self._set_status(
                    name,
                    status="rejected",
                    metrics=new_metrics,
                    detail=f"{metric} {new_score:.4f} is worse than the live model's {live_score:.4f}",
                )
                return
            path = None
            if outcome.save is not None and self.config.models_dir is not None:
                path = self.config.models_dir / name
                outcome.save(path)
            self.engine.set_model(outcome.model, name, new_metrics)
            with self._lock:
                self._versions = [
                    replace(v, status="retired") if v.status == "live" else v for v in self._versions
                ]
            baseline = "none" if live_score is None else f"{live_score:.4f}"
            self._set_status(
                name,
                status="live",
                metrics=new_metrics,
                path=str(path) if path else None,
                detail=f"{metric} {new_score:.4f} vs live {baseline}",
            )
            self._publish(path)
        except Exception as exc:
            log.exception("training failed", extra={"version": name})
            self._set_status(name, status="failed", detail=f"{type(exc).__name__}: {exc}")
