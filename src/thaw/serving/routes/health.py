"""Operations endpoints: health and Prometheus metrics (both open: no key needed)."""


import os
import time

from fastapi import APIRouter, Response

from thaw.serving.config import ServeConfig
from thaw.serving.deps import ConfigDep, EngineDep, MetricsDep
from thaw.serving.schemas import HealthOut


def router(config: ServeConfig) -> APIRouter:
    """GET /health and GET /metrics."""
    api = APIRouter(tags=["operations"])
    started = time.monotonic()

    @api.get("/health", response_model=HealthOut)
    def health(engine: EngineDep, cfg: ConfigDep) -> HealthOut:
        return HealthOut(
            status="ok",
            items=len(engine.catalogue),
            model_version=engine.model_version,
            auth="keys" if cfg.auth_enabled else "open",
            uptime_seconds=round(time.monotonic() - started, 3),
            warming_up=engine.warming_up,
            worker=os.getpid(),
        )

    @api.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    )
    def metrics(engine: EngineDep, metrics: MetricsDep) -> Response:
        metrics.items.set(len(engine.catalogue))
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return api
