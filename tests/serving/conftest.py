"""Serving fixtures: an app over a temp SQLite file with the 16-d HashEncoder, and a small catalogue."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from thaw.encoders import HashEncoder
from thaw.serving.app import create_app
from thaw.serving.config import ExplorationConfig, ServeConfig

CATALOGUE = [
    {"id": "space-1", "title": "Star wars in deep space", "attributes": {"genre": "scifi"}},
    {"id": "space-2", "title": "Space station robots at war", "attributes": {"genre": "scifi"}},
    {"id": "space-3", "title": "Deep space stars and galaxies", "attributes": {"genre": "scifi"}},
    {"id": "love-1", "title": "A love story in Paris", "attributes": {"genre": "romance"}},
    {"id": "love-2", "title": "Paris romance: a love letter", "attributes": {"genre": "romance"}},
    {"id": "love-3", "title": "Love and letters in Paris", "attributes": {"genre": "romance"}},
    {"id": "cook-1", "title": "Cooking pasta at home", "attributes": {"genre": "food"}},
    {"id": "cook-2", "title": "Home cooking: bread and pasta", "attributes": {"genre": "food"}},
]


def serve_config(tmp_path: Path, db_url: str | None = None, **changes: Any) -> ServeConfig:
    """A config over `db_url` (default: a fresh SQLite file); exploration off unless asked for."""
    base = ServeConfig(
        db_url=db_url or f"sqlite:///{tmp_path / 'serve.sqlite'}",
        encoder="hash",
        exploration=ExplorationConfig(share=0.0),
        log_impressions=True,
        impression_flush_seconds=0.05,
    )
    return replace(base, **changes)


@pytest.fixture
def serve_db_url(tmp_path: Path) -> str:
    """The store the test's servers share (a module may override this to run on other backends)."""
    return f"sqlite:///{tmp_path / 'serve.sqlite'}"


@pytest.fixture
def make_client(tmp_path: Path, serve_db_url: str) -> Iterator[Callable[..., TestClient]]:
    """make_client(**config_changes, **create_app_kwargs) -> a started TestClient."""
    clients: list[TestClient] = []

    def make(app_kwargs: dict[str, Any] | None = None, **changes: Any) -> TestClient:
        config = serve_config(tmp_path, serve_db_url, **changes)
        client = TestClient(create_app(config, encoder=HashEncoder(dim=16), **(app_kwargs or {})))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """An open server holding CATALOGUE and two users: a sci-fi fan and a romance reader."""
    c = make_client()
    assert c.post("/items", json=CATALOGUE).status_code == 200
    assert c.post("/users", json=[{"id": "scifi-fan", "attributes": {"age": 30}}, {"id": "reader"}]).status_code == 200
    events = [
        {"user": "scifi-fan", "item": "space-1", "type": "purchase"},
        {"user": "scifi-fan", "item": "space-2", "type": "click"},
        {"user": "reader", "item": "love-1", "type": "rating", "value": 5},
    ]
    assert c.post("/events", json=events).status_code == 200
    return c
