"""`thaw ingest` and `thaw stats`: put data into a store and look at what is there."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from thaw.cli import app
from thaw.cli.common import DbOption, fail_on_data_errors, open_store, progress_bar
from thaw.config import data_dir_from_env
from thaw.data.datasets import DATASETS, ingest_dataset
from thaw.data.importer import KINDS, ImportSpec, files_in, guess_kind, import_files

console = Console()


@app.command()
def ingest(
    source: Annotated[
        str,
        typer.Argument(help="ml-100k, citeulike-a, or a CSV/JSONL file or a directory of them"),
    ],
    db: DbOption = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Dataset root (default: $THAW_DATA, else ../shared/data)")
    ] = None,
    kind: Annotated[
        str | None, typer.Option(help=f"What a file holds: {', '.join(KINDS)} (default: from its name)")
    ] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="Column mapping FIELD=COLUMN, e.g. --map id=movie_id (repeatable)"),
    ] = None,
    event_type: Annotated[
        str | None, typer.Option(help="Event type for files without a type column")
    ] = None,
) -> None:
    """Load a dataset or files into the store; re-ingesting the same data changes nothing."""
    with fail_on_data_errors(), open_store(db) as store, progress_bar(console) as hook:
        if source in DATASETS:
            root = data_dir or data_dir_from_env()
            result = ingest_dataset(store, source, root, progress=hook)
        else:
            path = Path(source)
            if not path.exists():
                raise typer.BadParameter(
                    f"{source!r} is neither a known dataset ({', '.join(DATASETS)}) nor an existing path"
                )
            mapping = _parse_mapping(map_ or [])
            paths = files_in(path) if path.is_dir() else [path]
            specs = [
                ImportSpec(p, kind or guess_kind(p), mapping, default_event_type=event_type)
                for p in paths
            ]
            result = import_files(store, specs, progress=hook)
    console.print(
        f"[green]ingested[/] {source}: {result.inserted:,} new rows, {result.updated:,} updated, "
        f"{result.unchanged:,} unchanged"
    )


@app.command()
def stats(
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
) -> None:
    """Counts of users, items and events by type."""
    with fail_on_data_errors(), open_store(db) as store:
        result = store.stats()
    if as_json:
        typer.echo(json.dumps(asdict(result), indent=2))
        return
    table = Table(title=f"thaw store {store.url}", show_header=True)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("users", f"{result.users:,}")
    table.add_row("items", f"{result.items:,}")
    table.add_row("events", f"{result.events:,}")
    for type_, count in result.events_by_type.items():
        table.add_row(f"  {type_} events", f"{count:,}")
    if result.generated_events:
        table.add_row("generated events (not real data)", f"{result.generated_events:,}")
    console.print(table)


def _parse_mapping(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        if not sep or not field or not column:
            raise typer.BadParameter(f"--map takes FIELD=COLUMN, got {pair!r}")
        mapping[field.strip()] = column.strip()
    return mapping
