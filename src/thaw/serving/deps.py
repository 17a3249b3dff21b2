"""Request dependencies: the engine, the model registry, the config and the metrics on app.state.

They are `async def` because they only read attributes: FastAPI runs a plain `def` dependency in
its thread pool, one thread hand-off per dependency per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from thaw.serving.config import ServeConfig
from thaw.serving.engine import Engine
from thaw.serving.metrics import ServeMetrics
from thaw.serving.models import ModelRegistry


async def _engine(request: Request) -> Engine:
    return request.app.state.engine


async def _registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


async def _config(request: Request) -> ServeConfig:
    return request.app.state.config


async def _metrics(request: Request) -> ServeMetrics:
    return request.app.state.metrics


EngineDep = Annotated[Engine, Depends(_engine)]
RegistryDep = Annotated[ModelRegistry, Depends(_registry)]
ConfigDep = Annotated[ServeConfig, Depends(_config)]
MetricsDep = Annotated[ServeMetrics, Depends(_metrics)]
