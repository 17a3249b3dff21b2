"""Shared fixtures: stores on every backend, the real data directory, a tiny catalogue."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from thaw.data.records import EventRecord, ItemRecord, UserRecord
from thaw.data.store import Store

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PG_ADMIN_URL = os.environ.get("THAW_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_ADMIN_URL = os.environ.get("THAW_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def _server_answers(url: str) -> str | None:
    """None if the server answers, else the reason it does not."""
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means: skip, and say why
        return f"{url} does not answer: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real datasets ($THAW_DATA, else ../shared/data)."""
    root = Path(os.environ.get("THAW_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    if not (root / "ml-100k").is_dir():
        pytest.fail(f"real datasets not found under {root}: set THAW_DATA to ../shared/data")
    return root


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file."""
    return f"sqlite:///{tmp_path / 'thaw.sqlite'}"


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    """A migrated store on a fresh SQLite file."""
    with Store(sqlite_url) as s:
        yield s


def _fresh_database(admin_url: str, kind: str) -> Iterator[str]:
    reason = _server_answers(admin_url)
    if reason:
        pytest.skip(reason)
    name = f"thaw_{uuid.uuid4().hex[:10]}"
    options = {"isolation_level": "AUTOCOMMIT"}
    admin = create_engine(admin_url, **options)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as conn:
            if kind == "postgresql":
                conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the PostgreSQL server (skipped, with the reason, if it does not answer)."""
    yield from _fresh_database(PG_ADMIN_URL, "postgresql")


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh database on the MariaDB server (skipped, with the reason, if it does not answer)."""
    yield from _fresh_database(MARIADB_ADMIN_URL, "mariadb")


BACKENDS = [
    pytest.param("sqlite_url", id="sqlite"),
    pytest.param("postgres_url", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("mariadb_url", id="mariadb", marks=pytest.mark.mariadb),
]


@pytest.fixture(params=BACKENDS)
def any_store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A migrated store on each backend in turn."""
    url = request.getfixturevalue(request.param)
    with Store(url) as s:
        yield s


T0 = datetime(2024, 1, 1, 12, 0, 0)


@pytest.fixture
def tiny_records() -> tuple[list[UserRecord], list[ItemRecord], list[EventRecord]]:
    """Three users, four items, a handful of events of every kind."""
    users = [
        UserRecord("alice", {"age": 31, "country": "NL"}, "likes sci-fi"),
        UserRecord("bob", {"age": 45, "country": "FR"}),
        UserRecord("carol", {}),
    ]
    items = [
        ItemRecord("i1", "Dune", "desert planet spice", {"genres": ["sci-fi"]}),
        ItemRecord("i2", "Emma", "matchmaking in Highbury", {"genres": ["romance"]}),
        ItemRecord("i3", "Neuromancer", "cyberspace heist", {"genres": ["sci-fi"]}, {"tags": ["cyber"]}),
        ItemRecord("i4", "Persuasion", None, {"genres": ["romance"]}),
    ]
    kinds = ["view", "click", "purchase", "rating", "review"]
    events = [
        EventRecord("alice", "i1", "rating", T0, value=5.0, idempotency_key="e1"),
        EventRecord("alice", "i3", "purchase", T0 + timedelta(minutes=1), idempotency_key="e2"),
        EventRecord("bob", "i2", "click", T0 + timedelta(minutes=2), idempotency_key="e3"),
        EventRecord("bob", "i4", "review", T0 + timedelta(minutes=3), text="lovely", idempotency_key="e4"),
        EventRecord("carol", "i1", "view", T0 + timedelta(minutes=4), idempotency_key="e5"),
    ]
    assert {e.type for e in events} == set(kinds)
    return users, items, events
