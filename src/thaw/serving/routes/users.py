"""People endpoints: add, read and forget users."""


from typing import Annotated

from pydantic import Field
from fastapi import APIRouter, Body, Path, Request, Response, status

from thaw.data.records import UserRecord
from thaw.serving.auth import ReadAccess, WriteAccess
from thaw.serving.config import ServeConfig
from thaw.serving.deps import ConfigDep, EngineDep
from thaw.serving.engine import NotFoundError
from thaw.serving.forget import forget_user
from thaw.serving.routes import NOT_FOUND, check_batch, not_found
from thaw.serving.schemas import Id, UserIn, UserOut, WriteOut

UserPath = Annotated[Id, Path(description="the user's external id")]


def router(config: ServeConfig) -> APIRouter:
    """Routes under /users (recommendations live in routes.recommend)."""
    api = APIRouter(prefix="/users", tags=["users"])

    @api.post("", response_model=WriteOut, dependencies=[WriteAccess], summary="Add or update users (one or a batch)")
    def post_users(
        body: Annotated[UserIn | Annotated[list[UserIn], Field(max_length=config.limits.max_batch)], Body()],
        engine: EngineDep,
        cfg: ConfigDep,
    ) -> WriteOut:
        users = body if isinstance(body, list) else [body]
        check_batch(len(users), cfg.limits.max_batch, "users")
        result = engine.store.upsert_users([UserRecord(u.id, dict(u.attributes), u.text) for u in users])
        return WriteOut(inserted=result.inserted, updated=result.updated, unchanged=result.unchanged)

    @api.get("/{user_id}", response_model=UserOut, dependencies=[ReadAccess], responses=NOT_FOUND)
    def get_user(user_id: UserPath, engine: EngineDep) -> UserOut:
        found = engine.store.get_users([user_id])
        if not found:
            raise not_found(NotFoundError("user", [user_id]))
        user = found[0]
        n_events = sum(1 for _ in engine.store.iter_events(user=user_id))
        return UserOut(id=user.id, attributes=user.attributes, text=user.text, created_at=user.created_at, n_events=n_events)

    @api.delete(
        "/{user_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        dependencies=[WriteAccess],
        responses=NOT_FOUND,
        summary="Forget a user: the row, every event (generated too), impression, cached text vector and in-memory trace",
    )
    def delete_user(user_id: UserPath, engine: EngineDep, request: Request) -> Response:
        if not forget_user(engine, user_id, getattr(request.app.state, "audience", None)):
            raise not_found(NotFoundError("user", [user_id]))
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return api
