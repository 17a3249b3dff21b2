"""Catalogue endpoints: add, read, change and delete items."""


from typing import Annotated

from pydantic import Field
from fastapi import APIRouter, Body, Path, Response, status

from thaw.data.records import ItemRecord
from thaw.serving.auth import ReadAccess, WriteAccess
from thaw.serving.config import ServeConfig
from thaw.serving.deps import ConfigDep, EngineDep, MetricsDep
from thaw.serving.engine import NotFoundError
from thaw.serving.routes import NOT_FOUND, check_batch, not_found
from thaw.serving.schemas import Id, ItemIn, ItemOut, ItemPatch, WriteOut

ItemPath = Annotated[Id, Path(description="the item's external id")]


def router(config: ServeConfig) -> APIRouter:
    """Routes under /items."""
    api = APIRouter(prefix="/items", tags=["items"])

    @api.post(
        "",
        response_model=WriteOut,
        dependencies=[WriteAccess],
        summary="Add or update items (one or a batch); they are recommendable when this returns",
    )
    def post_items(
        body: Annotated[ItemIn | Annotated[list[ItemIn], Field(max_length=config.limits.max_batch)], Body()],
        engine: EngineDep,
        cfg: ConfigDep,
        metrics: MetricsDep,
    ) -> WriteOut:
        items = body if isinstance(body, list) else [body]
        check_batch(len(items), cfg.limits.max_batch, "items")
        result = engine.add_items(
            [ItemRecord(i.id, i.title, i.text, dict(i.attributes)) for i in items]
        )
        metrics.items.set(len(engine.catalogue))
        return WriteOut(inserted=result.inserted, updated=result.updated, unchanged=result.unchanged)

    @api.get("/{item_id}", response_model=ItemOut, dependencies=[ReadAccess], responses=NOT_FOUND)
    def get_item(item_id: ItemPath, engine: EngineDep) -> ItemOut:
        found = engine.store.get_items([item_id])
        if not found:
            raise not_found(NotFoundError("item", [item_id]))
        return _item_out(engine, found[0])

    @api.patch("/{item_id}", response_model=ItemOut, dependencies=[WriteAccess], responses=NOT_FOUND)
    def patch_item(item_id: ItemPath, patch: ItemPatch, engine: EngineDep) -> ItemOut:
        fields = patch.model_dump(exclude_unset=True)
        fields = {k: v for k, v in fields.items() if not (k in ("title", "attributes") and v is None)}
        try:
            record = engine.update_item(item_id, fields)
        except NotFoundError as exc:
            raise not_found(exc) from exc
        return _item_out(engine, record)

    @api.delete(
        "/{item_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        dependencies=[WriteAccess],
        responses=NOT_FOUND,
    )
    def delete_item(item_id: ItemPath, engine: EngineDep, metrics: MetricsDep) -> Response:
        try:
            engine.delete_item(item_id)
        except NotFoundError as exc:
            raise not_found(exc) from exc
        metrics.items.set(len(engine.catalogue))
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return api


def _item_out(engine: EngineDep, record: ItemRecord) -> ItemOut:
    catalogue = engine.catalogue
    row = catalogue.row(record.id)
    n = catalogue.n_rows
    impressions = int(catalogue.impressions.view(n)[row]) if row is not None else 0
    popularity = float(catalogue.popularity.view(n)[row]) if row is not None else 0.0
    return ItemOut(
        id=record.id,
        title=record.title,
        text=record.text,
        attributes=record.attributes,
        created_at=record.created_at,
        impressions=impressions,
        interactions=popularity,
    )
