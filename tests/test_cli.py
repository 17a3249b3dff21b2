"""The `thaw` command line, driven as a user would."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from thaw.cli import app

runner = CliRunner()


def test_ingest_movielens_then_stats_json(tmp_path: Path, data_dir: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ml.sqlite'}"
    result = runner.invoke(app, ["ingest", "ml-100k", "--db", db, "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "102,625 new rows" in result.output
    result = runner.invoke(app, ["stats", "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert (stats["users"], stats["items"], stats["events"]) == (943, 1682, 100_000)
    assert stats["events_by_type"] == {"rating": 100_000}
    table = runner.invoke(app, ["stats", "--db", db])
    assert "100,000" in table.output and "1,682" in table.output


def test_ingest_a_file_with_a_mapping(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'shop.sqlite'}"
    items = tmp_path / "catalogue.csv"
    items.write_text("sku,name\nA1,Red scarf\n")
    result = runner.invoke(
        app, ["ingest", str(items), "--db", db, "--kind", "items", "--map", "id=sku", "--map", "title=name"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(runner.invoke(app, ["stats", "--db", db, "--json"]).output)["items"] == 1


def test_bad_input_exits_2_with_file_line_and_field(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.sqlite'}"
    events = tmp_path / "events.csv"
    events.write_text("user,item,type,timestamp\nu1,A1,click,2024-01-01\n")
    result = runner.invoke(app, ["ingest", str(events), "--db", db])
    assert result.exit_code == 2
    assert "events.csv, line 2: field 'user': unknown user 'u1'" in " ".join(result.output.split())


def test_missing_dataset_says_where_it_looked(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["ingest", "citeulike-a", "--db", f"sqlite:///{tmp_path / 'x.sqlite'}", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "citeulike-a" in result.output and str(tmp_path) in " ".join(result.output.split())


def test_unknown_source_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", "netflix-prize", "--db", f"sqlite:///{tmp_path / 'x.sqlite'}"])
    assert result.exit_code == 2
    assert "neither a known dataset" in " ".join(result.output.split())
