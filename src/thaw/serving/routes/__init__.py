"""One APIRouter per module, built per app by `router(config)`."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, status

from thaw.serving.engine import NotFoundError

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "unknown id"}}


def field_error(loc: list[str | int], message: str, kind: str = "value_error") -> HTTPException:
    """A 422 in FastAPI's own shape, naming the field at fault."""
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT, [{"loc": loc, "msg": message, "type": kind}]
    )


def not_found(error: NotFoundError) -> HTTPException:
    """A 404 naming the unknown id."""
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{error.kind} {error.ids[0]!r} not found")


def check_batch(n: int, limit: int, field: str) -> None:
    """Reject a batch larger than the configured limit."""
    if n > limit:
        raise field_error(["body", field], f"at most {limit} {field} per request, got {n}", "too_long")
    if n == 0:
        raise field_error(["body", field], f"send at least one of {field}", "too_short")
