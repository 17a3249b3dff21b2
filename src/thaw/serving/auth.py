"""API keys: `Authorization: Bearer KEY`; read < write < admin, and no keys at all means open."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from thaw.serving.config import ServeConfig

SCOPES = ("read", "write", "admin")

_bearer = HTTPBearer(auto_error=False, description="an API key: read, write or admin")


def _matches(key: str, keys: frozenset[str]) -> bool:
    # Constant-time comparison against every key, so timing reveals nothing about which matched.
    found = False
    for candidate in keys:
        found |= hmac.compare_digest(key.encode(), candidate.encode())
    return found


def scope_of(config: ServeConfig, key: str) -> str | None:
    """The highest scope a key grants, or None for an unknown key."""
    if _matches(key, config.admin_keys):
        return "admin"
    if _matches(key, config.write_keys):
        return "write"
    if _matches(key, config.read_keys):
        return "read"
    return None


def require(scope: str) -> Callable[..., None]:
    """A dependency that lets the request through only with a key of `scope` or higher."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")

    async def check(  # async: it only compares strings, and a plain def would run in the thread pool
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        config: ServeConfig = request.app.state.config
        if not config.auth_enabled:
            return
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing API key: send 'Authorization: Bearer KEY'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        granted = scope_of(config, credentials.credentials)
        if granted is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "unknown API key", headers={"WWW-Authenticate": "Bearer"}
            )
        if SCOPES.index(granted) < SCOPES.index(scope):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this endpoint needs a {scope} key; yours is a {granted} key")

    return check


ReadAccess = Depends(require("read"))
WriteAccess = Depends(require("write"))
AdminAccess = Depends(require("admin"))
