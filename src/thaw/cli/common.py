"""Pieces every command shares: the --db option, opening a store, errors, progress bars."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from thaw.config import DEFAULT_DB_URL
from thaw.data.errors import ThawDataError
from thaw.data.store import Store

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help=f"SQLAlchemy URL of the store (default: $THAW_DB, else {DEFAULT_DB_URL})",
        show_default=False,
    ),
]

err_console = Console(stderr=True, soft_wrap=True)


def db_url(value: str | None) -> str:
    """The store URL: the option, else $THAW_DB, else a SQLite file in the working directory."""
    return value or os.environ.get("THAW_DB") or DEFAULT_DB_URL


@contextmanager
def open_store(url: str | None) -> Iterator[Store]:
    """A migrated store for `url`, closed afterwards."""
    store = Store(db_url(url))
    try:
        yield store
    finally:
        store.close()


@contextmanager
def fail_on_data_errors() -> Iterator[None]:
    """Turn data and configuration errors into one clear line and exit code 2.

    Set THAW_DEBUG=1 to see the traceback instead.
    """
    try:
        yield
    except (ThawDataError, ValueError, FileNotFoundError) as exc:
        if os.environ.get("THAW_DEBUG"):
            raise
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(code=2) from exc


@contextmanager
def progress_bar(console: Console) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar driven by hook(stage, done, total); one bar per stage."""
    with Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        tasks: dict[str, int] = {}

        def hook(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total or None)
            progress.update(tasks[stage], completed=done, total=total or None)

        yield hook
