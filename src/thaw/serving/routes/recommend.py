"""Recommendation endpoints: for a stored user, for someone new, and items similar to an item.

They are `async def`, so they run on the worker's event loop without a hand-off to the thread pool:
their work is CPU-bound (the user tower, one scan, a partial sort) plus one or two indexed single-row
reads, so a thread would only add switching (measured: 12-17% less CPU per request, and shorter
tails). A worker serves one such request at a time; run as many workers as cores.
"""


from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from thaw.serving.auth import ReadAccess
from thaw.serving.config import ServeConfig
from thaw.serving.deps import ConfigDep, EngineDep, MetricsDep
from thaw.serving.engine import NotFoundError, RecommendationList
from thaw.serving.ranking import Scored
from thaw.serving.routes import NOT_FOUND, field_error, not_found
from thaw.serving.schemas import (
    Id,
    NewUserIn,
    ReasonOut,
    RecommendationOut,
    RecommendationsOut,
    SimilarOut,
)


def router(config: ServeConfig) -> APIRouter:
    """GET /users/{id}/recommendations, POST /recommendations, GET /items/{id}/similar."""
    api = APIRouter(tags=["recommendations"], dependencies=[ReadAccess])
    K = Annotated[
        int, Query(ge=1, le=config.limits.max_k, description="how many items to return")
    ]

    @api.get("/users/{user_id}/recommendations", response_model=RecommendationsOut, responses=NOT_FOUND)
    async def user_recommendations(
        user_id: Annotated[Id, Path(description="the user's external id")],
        engine: EngineDep,
        metrics: MetricsDep,
        k: K = config.default_k,
        exclude_seen: Annotated[bool, Query(description="leave out items the user interacted with")] = True,
        explain: Annotated[bool, Query(description="add the reason behind each item")] = False,
    ) -> RecommendationsOut:
        try:
            profile = engine.profile_of(user_id)
        except NotFoundError as exc:
            raise not_found(exc) from exc
        served = engine.recommend(profile, k, exclude_seen=exclude_seen, explain=explain)
        return _out(user_id, served, metrics)

    @api.post(
        "/recommendations",
        response_model=RecommendationsOut,
        summary="Recommendations for someone not stored: attributes, a few liked or rated items, text",
        description=(
            "Liked items count as purchase events, rated items as rating events of their value, weighed "
            "as a stored user's history is. 422 names the field at fault: k, an unknown liked or rated "
            "item, an item rated twice, a rating outside the server's rating scale."
        ),
    )
    async def new_user_recommendations(body: NewUserIn, engine: EngineDep, cfg: ConfigDep, metrics: MetricsDep) -> RecommendationsOut:
        if body.k > cfg.limits.max_k:
            raise field_error(["body", "k"], f"k must be <= {cfg.limits.max_k}", "less_than_equal")
        limit = cfg.limits.max_liked_items
        if len(body.liked_items) > limit:
            raise field_error(["body", "liked_items"], f"at most {limit} liked items", "too_long")
        if len(body.liked_items) + len(body.rated_items) > limit:
            raise field_error(["body", "rated_items"], f"at most {limit} liked and rated items together", "too_long")
        rated = _checked_ratings(body, engine.rating_scale)
        try:
            profile = engine.profile_new(dict(body.attributes), list(body.liked_items), body.text, rated)
        except NotFoundError as exc:
            raise _unknown_item(body, exc.ids[0]) from exc
        served = engine.recommend(profile, body.k, exclude_seen=body.exclude_liked, explain=body.explain)
        return _out(None, served, metrics)

    @api.get("/items/{item_id}/similar", response_model=SimilarOut, responses=NOT_FOUND, tags=["items"])
    async def similar_items(
        item_id: Annotated[Id, Path(description="the item's external id")],
        engine: EngineDep,
        metrics: MetricsDep,
        k: K = config.default_k,
        explain: Annotated[bool, Query(description="add the reason behind each item")] = False,
    ) -> SimilarOut:
        try:
            served = engine.similar(item_id, k, explain=explain)
        except NotFoundError as exc:
            raise not_found(exc) from exc
        return SimilarOut(item=item_id, items=[_item(s, metrics) for s in served.items], model_version=served.model_version)

    return api


def _checked_ratings(body: NewUserIn, scale: tuple[float, float]) -> list[tuple[str, float]]:
    """(item, value) of each rated item; 422 at a value outside `scale` or an item rated twice."""
    low, high = scale
    first: dict[str, int] = {}
    for n, rated in enumerate(body.rated_items):
        if not low <= rated.value <= high:
            raise field_error(
                ["body", "rated_items", n, "value"],
                f"rating {rated.value:g} of item {rated.item!r} is outside the rating scale {low:g} to {high:g}",
                "out_of_range",
            )
        if rated.item in first:
            raise field_error(
                ["body", "rated_items", n, "item"],
                f"item {rated.item!r} is rated twice (first at rated_items[{first[rated.item]}]); send one rating per item",
                "duplicate",
            )
        first[rated.item] = n
    return [(r.item, r.value) for r in body.rated_items]


def _unknown_item(body: NewUserIn, item: str) -> HTTPException:
    """A 422 at the first place `item` appears: liked_items[i] or rated_items[i].item."""
    if item in body.liked_items:
        return field_error(["body", "liked_items", body.liked_items.index(item)], f"unknown item {item!r}", "unknown_reference")
    position = next(n for n, r in enumerate(body.rated_items) if r.item == item)
    return field_error(["body", "rated_items", position, "item"], f"unknown item {item!r}", "unknown_reference")


def _item(scored: Scored, metrics: MetricsDep) -> RecommendationOut:
    metrics.served.labels(scored.source).inc()
    reason = None
    if scored.reason is not None:
        reason = ReasonOut(items=scored.reason.items, attributes=scored.reason.attributes, detail=scored.reason.detail)
    return RecommendationOut(id=scored.item, title=scored.title, score=scored.score, source=scored.source, reason=reason)  # type: ignore[arg-type]


def _out(user: str | None, served: RecommendationList, metrics: MetricsDep) -> RecommendationsOut:
    return RecommendationsOut(
        user=user,
        items=[_item(s, metrics) for s in served.items],
        request_id=served.request_id,
        model_version=served.model_version,
    )
