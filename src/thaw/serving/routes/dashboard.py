"""The dashboard: the page at `/` and its static assets, all served by thaw (no external requests)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse, RedirectResponse

from thaw.serving.config import ServeConfig

STATIC = Path(__file__).resolve().parent.parent / "static"

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

# The page may load and call only its own origin: a stray external URL fails loudly in the browser.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def router(config: ServeConfig) -> APIRouter:
    """GET / (the page) and GET /static/{path} (its scripts, styles and icon); not in the API schema."""
    api = APIRouter(include_in_schema=False)

    @api.api_route("/", methods=["GET", "HEAD"])
    def page() -> FileResponse:
        return _file(STATIC / "index.html")

    @api.get("/dashboard")
    def dashboard() -> RedirectResponse:
        return RedirectResponse("/", status.HTTP_308_PERMANENT_REDIRECT)

    @api.api_route("/static/{path:path}", methods=["GET", "HEAD"])
    def asset(path: str) -> FileResponse:
        target = (STATIC / path).resolve()
        if not target.is_relative_to(STATIC) or not target.is_file() or target.suffix not in MEDIA_TYPES:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dashboard asset {path!r}")
        return _file(target)

    return api


def _file(path: Path) -> FileResponse:
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=SECURITY_HEADERS)
