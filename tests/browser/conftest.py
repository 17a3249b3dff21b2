"""Browser fixtures: real `thaw serve` processes over a small catalogue, and headless Debian Chromium.

One server serves a small trained model with an evaluation report beside it (open API); a second
serves the same catalogue with API keys. Every page fails its test if it requests anything that
is not on the loopback server, logs a console error, or throws.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.serving.conftest import CATALOGUE
from tests.serving.live_server import LiveServer

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
READ_KEY, WRITE_KEY = "dash-read-key", "dash-write-key"

# CATALOGUE (space, romance, cooking) plus music, and a second page of each theme.
EXTRA_ITEMS = [
    {"id": "space-4", "title": "Rockets to the red planet", "attributes": {"genre": "scifi"}},
    {"id": "love-4", "title": "Wedding bells in spring", "attributes": {"genre": "romance"}},
    {"id": "cook-3", "title": "Baking bread for beginners", "attributes": {"genre": "food"}},
    {"id": "cook-4", "title": "Pasta sauces from Italy", "attributes": {"genre": "food"}},
    {"id": "jazz-1", "title": "Jazz piano for night owls", "attributes": {"genre": "music"}},
    {"id": "jazz-2", "title": "Learning jazz guitar", "attributes": {"genre": "music"}},
    {"id": "jazz-3", "title": "Jazz clubs of New Orleans", "attributes": {"genre": "music"}},
    {"id": "rock-1", "title": "Guitar heroes of rock", "attributes": {"genre": "music"}},
]
ITEMS = CATALOGUE + EXTRA_ITEMS
THEMES = {
    "scifi": ["space-1", "space-2", "space-3", "space-4"],
    "romance": ["love-1", "love-2", "love-3", "love-4"],
    "food": ["cook-1", "cook-2", "cook-3", "cook-4"],
    "music": ["jazz-1", "jazz-2", "jazz-3", "rock-1"],
}
T0 = datetime(2024, 3, 1, 9, 0, 0)


def _fill_store(url: str) -> None:
    """Twenty users, each mostly in one theme, with events spread over forty days."""
    from thaw.data.records import EventRecord, ItemRecord, UserRecord
    from thaw.data.store import Store

    users, events = [], []
    themes = list(THEMES)
    for n in range(20):
        theme = themes[n % len(themes)]
        users.append(UserRecord(f"u{n}", {"age": 18 + 3 * n, "group": "night" if n % 2 else "day"}))
        liked = THEMES[theme][n % 2 :] + [THEMES[themes[(n + 1) % 4]][n % 4]]
        for k, item in enumerate(liked):
            kind = ("purchase", "click", "rating", "view")[(n + k) % 4]
            events.append(
                EventRecord(f"u{n}", item, kind, T0 + timedelta(days=2 * n, hours=k), value=4.0 if kind == "rating" else None)
            )
    with Store(url) as store:
        store.upsert_items([ItemRecord(i["id"], i["title"], None, i["attributes"]) for i in ITEMS])
        store.upsert_users(users)
        store.add_events(events)


def _train_and_evaluate(url: str, model_dir: Path, work: Path) -> None:
    """A small thaw model (`thaw train`) and a cold-item report (`thaw evaluate --json`) beside it.

    The report has a row for thaw, the live model's method, with the same small settings.
    """
    from typer.testing import CliRunner

    from thaw.cli import app

    config = work / "tiny.toml"
    config.write_text("[model]\nhidden = 16\n\n[train]\nbatch_users = 8\nn_random_negatives = 8\n")
    runner = CliRunner()
    trained = runner.invoke(
        app, ["train", "--db", url, "--config", str(config), "--encoder", "hash", "--epochs", "3", "--out", str(model_dir)]
    )
    assert trained.exit_code == 0, trained.output
    report = model_dir / "evaluation" / "cold-item.json"
    evaluated = runner.invoke(
        app,
        ["evaluate", "--db", url, "--scenario", "cold-item", "--models", "popularity,content-knn,thaw",
         "--folds", "2", "--n-folds", "4", "--encoder", "hash", "--json", str(report),
         "--model-option", "thaw.hidden=16", "--model-option", "thaw.batch_users=8",
         "--model-option", "thaw.n_random_negatives=8", "--model-option", "thaw.epochs=3"],
    )
    assert evaluated.exit_code == 0, evaluated.output


@dataclass
class Servers:
    """The open server (trained model + report) and the keyed one (content only)."""

    open: LiveServer
    keyed: LiveServer
    model_dir: Path
    logs: list[Path] = field(default_factory=list)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (make browser installs it)")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install -e .[dev])")
    work = tmp_path_factory.mktemp("dashboard")
    open_db, keyed_db = work / "open.sqlite", work / "keyed.sqlite"
    _fill_store(f"sqlite:///{open_db}")
    _fill_store(f"sqlite:///{keyed_db}")
    model_dir = work / "model"
    _train_and_evaluate(f"sqlite:///{open_db}", model_dir, work)
    keys = work / "keys.toml"
    keys.write_text(f'[serve]\nread_keys = "{READ_KEY}"\nwrite_keys = "{WRITE_KEY}"\n')
    live = Servers(
        LiveServer(f"sqlite:///{open_db}", work / "open.log", "--model", str(model_dir), "--explore-share", "0"),
        LiveServer(f"sqlite:///{keyed_db}", work / "keyed.log", "--config", str(keys), "--explore-share", "0"),
        model_dir,
    )
    # Both start at once: each spends most of its start-up importing.
    errors: list[BaseException] = []

    def start(server: LiveServer) -> None:
        try:
            server.start(timeout=90)
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in (live.open, live.keyed)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        if errors:
            raise errors[0]
        yield live
    finally:
        live.open.stop()
        live.keyed.stop()


@pytest.fixture(scope="session")
def browser(servers: Servers) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Guard:
    """Everything a page did that a test must not tolerate."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.external: list[str] = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.allowed_console: list[str] = []

    def check_request(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about"):
            return True
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.external.append(url)
            return False
        return True

    def assert_clean(self) -> None:
        assert not self.external, f"requests to somewhere other than {self.origin}: {self.external}"
        unexpected = [m for m in self.console_errors if not any(a in m for a in self.allowed_console)]
        assert not unexpected, f"console errors: {unexpected}"
        assert not self.page_errors, f"uncaught page errors: {self.page_errors}"


def open_page(browser: Any, server: LiveServer, *, width: int = 1280, height: int = 900) -> tuple[Any, Any, Guard]:
    """A fresh context and page on `server`, with requests off the loopback server refused and recorded."""
    context = browser.new_context(viewport={"width": width, "height": height}, service_workers="block")
    guard = Guard(server.url)

    def route(route: Any) -> None:
        if guard.check_request(route.request.url):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("request", lambda request: guard.check_request(request.url) or None)
    page.on("console", lambda message: guard.console_errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: guard.page_errors.append(str(error)))
    page.set_default_timeout(15_000)
    return context, page, guard


@pytest.fixture
def page_on(browser: Any) -> Iterator[Any]:
    """page_on(server, width=..) -> (page, guard); the guard is checked when the test ends."""
    opened: list[tuple[Any, Guard]] = []

    def make(server: LiveServer, **size: int) -> tuple[Any, Guard]:
        context, page, guard = open_page(browser, server, **size)
        opened.append((context, guard))
        return page, guard

    yield make
    for context, guard in opened:
        context.close()
        guard.assert_clean()


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/browser/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def goto(page: Any, server: LiveServer, section: str) -> None:
    """Open the dashboard at `#section` and wait until that section has rendered."""
    if page.url.startswith(server.url):  # same document: only the fragment changes
        page.evaluate("document.body.removeAttribute('data-ready')")
    page.goto(f"{server.url}/#{section}")
    page.wait_for_selector(f"body[data-ready='{section.split('/')[0]}']")

