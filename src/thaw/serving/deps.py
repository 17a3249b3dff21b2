"""Request dependencies: the engine, the model registry, the config and the metrics on app.state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from thaw.serving.config import ServeConfig
from thaw.serving.engine import Engine
from thaw.serving.metrics import ServeMetrics
from thaw.serving.models import ModelRegistry


def _engine(request: Request) -> Engine:
    return request.app.state.engine


def _registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


def _config(request: Request) -> ServeConfig:
    return request.app.state.config


def _metrics(request: Request) -> ServeMetrics:
    return request.app.state.metrics


EngineDep = Annotated[Engine, Depends(_engine)]
RegistryDep = Annotated[ModelRegistry, Depends(_registry)]
ConfigDep = Annotated[ServeConfig, Depends(_config)]
MetricsDep = Annotated[ServeMetrics, Depends(_metrics)]
