"""The `thaw` command line: thin over the library. Each command group lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="thaw",
    help="thaw: a recommender that is good from the first minute, for new users and new items.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module registers its commands on `app` when imported.
from thaw.cli import data as _data  # noqa: E402,F401
from thaw.cli import serve as _serve  # noqa: E402,F401
from thaw.cli import evaluate as _evaluate  # noqa: E402,F401
from thaw.cli import train as _train  # noqa: E402,F401


def main() -> None:
    """Entry point of the `thaw` console script."""
    app()
