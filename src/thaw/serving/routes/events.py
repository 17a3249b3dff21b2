"""Behaviour endpoint: append events, idempotently."""


from typing import Annotated

from pydantic import Field
from fastapi import APIRouter, Body

from thaw.data.errors import UnknownReferenceError
from thaw.data.records import EventRecord, now_utc
from thaw.serving.auth import WriteAccess
from thaw.serving.config import ServeConfig
from thaw.serving.deps import ConfigDep, EngineDep, MetricsDep
from thaw.serving.routes import check_batch, field_error
from thaw.serving.schemas import EventIn, WriteOut


def router(config: ServeConfig) -> APIRouter:
    """POST /events."""
    api = APIRouter(prefix="/events", tags=["events"])

    @api.post(
        "",
        response_model=WriteOut,
        dependencies=[WriteAccess],
        summary="Append events (one or a batch); a retried idempotency_key is stored once",
        responses={422: {"description": "bad field, or an unknown user / item (named by loc)"}},
    )
    def post_events(
        body: Annotated[EventIn | Annotated[list[EventIn], Field(max_length=config.limits.max_batch)], Body()],
        engine: EngineDep,
        cfg: ConfigDep,
        metrics: MetricsDep,
    ) -> WriteOut:
        events = body if isinstance(body, list) else [body]
        check_batch(len(events), cfg.limits.max_batch, "events")
        received = now_utc()
        records = [
            EventRecord(e.user, e.item, e.type, e.timestamp or received, e.value, e.text, e.idempotency_key)
            for e in events
        ]
        try:
            result = engine.add_events(records)
        except UnknownReferenceError as exc:
            field = exc.kind  # "user" or "item"
            position = next(
                (n for n, e in enumerate(events) if getattr(e, field) in set(exc.ids)), 0
            )
            loc: list[str | int] = ["body", position, field] if isinstance(body, list) else ["body", field]
            raise field_error(loc, str(exc), "unknown_reference") from exc
        metrics.events.labels("inserted").inc(result.inserted)
        metrics.events.labels("duplicate").inc(result.unchanged)
        return WriteOut(inserted=result.inserted, unchanged=result.unchanged)

    return api
