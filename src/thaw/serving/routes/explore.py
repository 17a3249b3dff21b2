"""Read-only endpoints behind the dashboard: overview, evaluation reports, search, histories, audiences."""

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import APIRouter, Path as PathParam, Query, Request

from thaw.data.records import EventRecord
from thaw.serving.audience import Audience, describe
from thaw.serving.auth import ReadAccess
from thaw.serving.config import ServeConfig
from thaw.serving.deps import ConfigDep, EngineDep, RegistryDep
from thaw.serving.engine import Engine, NotFoundError
from thaw.serving.insights import evaluation_reports, growth, summarise_attributes
from thaw.serving.explore_schemas import (
    AttributeOut,
    AttributesOut,
    AudienceMemberOut,
    AudienceOut,
    EvaluationOut,
    GrowthOut,
    HistoryEventOut,
    InteractionOut,
    ItemHitOut,
    ItemSearchOut,
    ItemUsersOut,
    OverviewOut,
    ReportErrorOut,
    ReportOut,
    UserHistoryOut,
)
from thaw.serving.routes import NOT_FOUND, not_found
from thaw.serving.schemas import Id

T = TypeVar("T")

def router(config: ServeConfig) -> APIRouter:
    """Routes under /explore (read key)."""
    api = APIRouter(prefix="/explore", tags=["explore"], dependencies=[ReadAccess])
    growth_cache = _Cached[tuple[datetime, Any]](15.0)
    attribute_cache = _Cached[AttributesOut](60.0)
    audience_lock = threading.Lock()

    def audience_of(request: Request, engine: Engine) -> Audience:
        # One per app, made on first use and kept on app.state beside the engine it reads.
        with audience_lock:
            audience = getattr(request.app.state, "audience", None)
            if audience is None or audience.engine is not engine:
                audience = request.app.state.audience = Audience(engine)
            return audience

    @api.get("/overview", response_model=OverviewOut, summary="Totals and their growth over time")
    def overview(
        request: Request,
        engine: EngineDep,
        cfg: ConfigDep,
        points: Annotated[int, Query(ge=2, le=500, description="moments in the growth series")] = 48,
    ) -> OverviewOut:
        from thaw.data.records import now_utc

        audience_of(request, engine).warm()  # the dashboard opens here: have audiences ready for later clicks
        stats = engine.store.stats()
        computed_at, series = growth_cache.get(points, lambda: (now_utc(), growth(engine.store, points)))
        return OverviewOut(
            users=stats.users,
            items=stats.items,
            events=stats.events,
            events_by_type=stats.events_by_type,
            generated_events=stats.generated_events,
            live_items=len(engine.catalogue),
            model_version=engine.model_version,
            auth="keys" if cfg.auth_enabled else "open",
            growth=GrowthOut(times=series.times, users=series.users, items=series.items, events=series.events),
            computed_at=computed_at,
        )

    @api.get("/evaluation", response_model=EvaluationOut, summary="The live model's metrics and evaluation reports")
    def evaluation(engine: EngineDep, registry: RegistryDep, cfg: ConfigDep) -> EvaluationOut:
        live = registry.live()
        state = engine.model_state
        directory = Path(live.path) if live is not None and live.path else cfg.model_dir
        if live is not None and live.origin == "content":
            directory = None
        reports, errors = [], []
        for found in evaluation_reports(directory):
            if found.report is None:
                errors.append(ReportErrorOut(file=found.file, error=found.error or "unreadable"))
            else:
                reports.append(ReportOut(file=found.file, **found.report))
        return EvaluationOut(
            model_version=engine.model_version,
            origin=live.origin if live is not None else "content",
            created_at=live.created_at if live is not None else None,
            live_metrics=dict(live.metrics) if live is not None else {},
            directory=directory.name if directory is not None else None,
            live_model=getattr(state.model, "name", None) if state is not None else None,
            reports=reports,
            errors=errors,
        )

    @api.get("/items", response_model=ItemSearchOut, summary="Search live items by title words or id")
    def search_items(
        engine: EngineDep,
        q: Annotated[str, Query(max_length=200, description="words the title must contain; empty: most popular")] = "",
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> ItemSearchOut:
        catalogue = engine.catalogue
        words = q.lower().split()
        popularity = catalogue.popularity.view(catalogue.n_rows)
        hits = []
        for view in catalogue.live_items():
            title = view.title.lower()
            exact = view.id == q.strip()
            if exact or all(w in title for w in words):
                pop = float(popularity[view.row]) if view.row < len(popularity) else 0.0
                hits.append((not exact, -pop, view.title, view.id, pop))
        hits.sort()  # the exact id first, then the most popular
        return ItemSearchOut(
            query=q,
            matches=len(hits),
            items=[ItemHitOut(id=h[3], title=h[2], interactions=h[4]) for h in hits[:limit]],
        )

    @api.get("/attributes", response_model=AttributesOut, summary="Which attributes users or items have, and their values")
    def attributes(
        engine: EngineDep,
        of: Annotated[Literal["users", "items"], Query(description="whose attributes")] = "users",
    ) -> AttributesOut:
        def compute() -> AttributesOut:
            rows = (u.attributes for u in engine.store.iter_users()) if of == "users" else (
                i.attributes for i in engine.store.iter_items()
            )
            n, summaries = summarise_attributes(rows)
            return AttributesOut(
                of=of,
                rows_read=n,
                attributes=[
                    AttributeOut(
                        name=s.name, kind=s.kind, count=s.count, distinct=s.distinct,  # type: ignore[arg-type]
                        values=s.values, minimum=s.minimum, maximum=s.maximum,
                    )
                    for s in summaries
                ],
            )

        return attribute_cache.get(of, compute)

    @api.get("/users/{user_id}/history", response_model=UserHistoryOut, responses=NOT_FOUND, summary="A user's recent events")
    def user_history(
        user_id: Annotated[Id, PathParam(description="the user's external id")],
        engine: EngineDep,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> UserHistoryOut:
        found = engine.store.get_users([user_id])
        if not found:
            raise not_found(NotFoundError("user", [user_id]))
        recent: deque[EventRecord] = deque(maxlen=limit)
        total = 0
        for event in engine.store.iter_events(user=user_id):
            recent.append(event)
            total += 1
        events = [
            HistoryEventOut(item=e.item, title=_title(engine, e.item), type=e.type, value=e.value, timestamp=e.timestamp)
            for e in reversed(recent)
        ]
        user = found[0]
        return UserHistoryOut(id=user.id, attributes=user.attributes, text=user.text, n_events=total, events=events)

    @api.get("/items/{item_id}/users", response_model=ItemUsersOut, responses=NOT_FOUND, summary="Who interacted with an item")
    def item_users(
        item_id: Annotated[Id, PathParam(description="the item's external id")],
        engine: EngineDep,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> ItemUsersOut:
        if item_id not in engine.catalogue and not engine.store.get_items([item_id]):
            raise not_found(NotFoundError("item", [item_id]))
        per_user: dict[str, list[EventRecord]] = {}
        n_events = 0
        for event in engine.store.iter_events(item=item_id):
            per_user.setdefault(event.user, []).append(event)
            n_events += 1
        ordered = sorted(per_user.items(), key=lambda kv: (kv[1][-1].timestamp, kv[0]), reverse=True)
        users = [
            InteractionOut(
                user=user,
                events=len(events),
                types=sorted({e.type for e in events}),
                last_value=events[-1].value,
                last_timestamp=events[-1].timestamp,
            )
            for user, events in ordered[:limit]
        ]
        return ItemUsersOut(item=item_id, n_users=len(per_user), n_events=n_events, users=users)

    @api.get(
        "/items/{item_id}/audience",
        response_model=AudienceOut,
        responses=NOT_FOUND,
        summary="Users this item would be recommended to: top users by score against the item's vector",
    )
    def item_audience(
        request: Request,
        item_id: Annotated[Id, PathParam(description="the item's external id")],
        engine: EngineDep,
        k: Annotated[int, Query(ge=1, le=config.limits.max_k)] = 10,
    ) -> AudienceOut:
        try:
            built, members = audience_of(request, engine).top_users(item_id, k)
        except NotFoundError as exc:
            raise not_found(exc) from exc
        return AudienceOut(
            item=item_id,
            users=[AudienceMemberOut(user=m.user, score=m.score, rank=m.rank, n_history=m.n_history) for m in members],
            **describe(built),
        )

    return api


def _title(engine: Engine, item_id: str) -> str:
    row = engine.catalogue.row(item_id)
    return engine.catalogue.title_of(row) if row is not None else ""


class _Cached(Generic[T]):
    """A value per key, recomputed when older than `seconds` (one computation at a time)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._values: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, compute: Callable[[], T]) -> T:
        with self._lock:
            hit = self._values.get(key)
            if hit is not None and time.monotonic() - hit[0] < self.seconds:
                return hit[1]
            value = compute()
            self._values[key] = (time.monotonic(), value)
            return value
