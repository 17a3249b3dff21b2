"""The FastAPI application factory: `create_app(config)`; store and model load in the lifespan."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

import thaw
from thaw.serving.config import ServeConfig
from thaw.serving.metrics import ServeMetrics
from thaw.serving.models import Trainer
from thaw.serving.routes import admin, dashboard, events, explore, health, items, recommend, users

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DESCRIPTION = """thaw serves recommendations for new users and new items from the first request.

Send an API key as `Authorization: Bearer KEY`: a read key for recommendations, a write key
for items, users and events (it also reads), an admin key for training (it does everything).
A server started with no keys at all is open to anyone. Every result says which source served
it: `model`, `content` (content similarity), `popularity` or `exploration`.
"""


def create_app(
    config: ServeConfig,
    *,
    encoder: Any | None = None,
    model: Any | None = None,
    model_metrics: dict[str, float] | None = None,
    trainer: Trainer | None = None,
) -> FastAPI:
    """Build the app. `encoder`, `model` and `trainer` override what config names (tests, benches)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from thaw.data.store import Store
        from thaw.serving.engine import Engine
        from thaw.serving.models import ModelRegistry

        from thaw.serving.models import load_checkpoint

        live_model, live_metrics = model, model_metrics
        if live_model is None and config.model_dir is not None:
            live_model, live_metrics = load_checkpoint(config.model_dir)
        text_encoder = encoder
        if text_encoder is None:
            from thaw.encoders import load_encoder

            # A trained model must see text vectors from the encoder it was trained with.
            spec = getattr(getattr(live_model, "config_", None), "encoder", None) or config.encoder
            if spec != config.encoder:
                log.info("using the model's text encoder", extra={"encoder": spec})
            text_encoder = load_encoder(spec, threads=config.threads)
        store = Store(config.db_url)
        engine = Engine(store, text_encoder, config)
        try:
            engine.load()
            from thaw.serving.retrain import make_trainer

            base = getattr(live_model, "config_", None)
            registry = ModelRegistry(
                engine, config, trainer or make_trainer(config.encoder, config.threads, base_config=base)
            )
            registry.load_initial(live_model, live_metrics)
            engine.feed.on_model = registry.adopt  # versions other workers train and save
            engine.start()
        except BaseException:
            store.close()
            raise
        app.state.engine = engine
        app.state.registry = registry
        metrics.items.set(len(engine.catalogue))
        metrics.model.labels(engine.model_version).set(1)
        if not config.auth_enabled:
            log.warning(
                "API is OPEN: no API keys are configured, so anyone who can reach this port may read "
                "and write. Set THAW_READ_KEYS / THAW_WRITE_KEYS / THAW_ADMIN_KEYS to require keys."
            )
        log.info(
            "serving",
            extra={"items": len(engine.catalogue), "model": engine.model_version, "db": store.backend},
        )
        try:
            yield
        finally:
            engine.stop()
            store.close()

    metrics = ServeMetrics()
    app = FastAPI(
        title="thaw",
        version=thaw.__version__ if hasattr(thaw, "__version__") else "0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.metrics = metrics
    for module in (items, users, events, recommend, admin, health, explore, dashboard):
        app.include_router(module.router(config))
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_middleware(ObservedRequests, metrics=metrics, max_body_bytes=config.limits.max_body_bytes)
    return app


class ObservedRequests:
    """ASGI middleware: body-size limit, latency and count metrics, one JSON access-log line."""

    def __init__(self, app: Callable[..., Awaitable[None]], *, metrics: ServeMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _too_large(send, self.max_body_bytes)
            self._observe(scope, 413, started)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, limited_receive, observed_send)
        except _BodyTooLarge:
            status = 413
            await _too_large(send, self.max_body_bytes)
        finally:
            self._observe(scope, status, started)

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        self.metrics.requests.labels(method, path, str(status)).inc()
        self.metrics.latency.labels(method, path).observe(elapsed)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "request",
                extra={
                    "method": method,
                    "path": scope.get("path"),
                    "route": path,
                    "status": status,
                    "ms": round(elapsed * 1000, 3),
                },
            )


class _BodyTooLarge(Exception):
    pass


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"request body larger than {limit} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 shape, made safe to encode (a NaN or a byte string in the input is shown as text)."""
    errors = []
    for error in exc.errors():
        error = dict(error)
        for key in ("input", "ctx"):
            if key in error:
                try:
                    json.dumps(jsonable_encoder(error[key]), allow_nan=False)
                    error[key] = jsonable_encoder(error[key])
                except (TypeError, ValueError):
                    error[key] = repr(error[key])
        errors.append(error)
    return JSONResponse({"detail": errors}, status_code=422)
