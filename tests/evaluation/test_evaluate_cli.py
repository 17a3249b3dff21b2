"""`thaw evaluate` driven as a user would: a store in, JSON and a report directory out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thaw.cli import app
from thaw.cli.evaluate import parse_model_options
from thaw.data.datasets import write_records
from thaw.data.store import Store
from thaw.evaluation.synthetic import synthetic_records

runner = CliRunner()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('eval') / 'synthetic.sqlite'}"
    store = Store(url)
    write_records(store, *synthetic_records(n_users=80, n_items=120, interactions_per_user=10))
    store.close()
    return url


def test_evaluate_writes_the_documented_json(db: str, tmp_path: Path) -> None:
    out, report = tmp_path / "out.json", tmp_path / "report"
    result = runner.invoke(app, [
        "evaluate", "--db", db, "--scenario", "cold-item", "--models", "random,popularity,content-knn",
        "--folds", "2", "--seed", "3", "--json", str(out), "--report", str(report),
        "--write-split-dir", str(tmp_path / "splits"),
    ])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["scenario"] == "cold-item" and doc["folds"] == 2 and doc["seed"] == 3
    assert [r["model"] for r in doc["results"]] == ["random", "popularity", "content-knn"]
    metric = doc["results"][0]["metrics"]["recall@20"]
    assert set(metric) == {"mean", "std", "per_fold"} and len(metric["per_fold"]) == 2
    assert "fit_seconds" in doc["results"][0]
    assert (report / "report.md").is_file() and (report / "recall_at_k.png").is_file()
    assert (tmp_path / "splits" / "fold-1" / "cold_item_test.csv").is_file()

    # The written split read back gives fold 0's numbers.
    again = tmp_path / "again.json"
    result = runner.invoke(app, [
        "evaluate", "--db", db, "--models", "random,popularity,content-knn", "--seed", "3",
        "--split-dir", str(tmp_path / "splits" / "fold-0"), "--json", str(again),
    ])
    assert result.exit_code == 0, result.output
    redo = json.loads(again.read_text())
    for before, after in zip(doc["results"], redo["results"]):
        assert after["metrics"]["recall@20"]["mean"] == pytest.approx(before["metrics"]["recall@20"]["per_fold"][0])


def test_evaluate_runs_several_scenarios_on_the_same_folds(db: str, tmp_path: Path) -> None:
    out, report = tmp_path / "out.json", tmp_path / "report"
    result = runner.invoke(app, [
        "evaluate", "--db", db, "--scenario", "cold-item,warm", "--models", "popularity",
        "--folds", "1", "--json", str(out), "--report", str(report),
    ])
    assert result.exit_code == 0, result.output
    assert "cold-item (cold ranking" in result.output and "warm (warm ranking" in result.output
    for scenario in ("cold-item", "warm"):
        doc = json.loads((tmp_path / f"out-{scenario}.json").read_text())
        assert doc["scenario"] == scenario and doc["folds"] == 1
        assert (report / scenario / "report.md").is_file()
    single = runner.invoke(app, ["evaluate", "--db", db, "--scenario", "cold-item,tepid"])
    assert single.exit_code == 2 and "unknown scenario" in single.output


def test_evaluate_rejects_unknown_names(db: str) -> None:
    result = runner.invoke(app, ["evaluate", "--db", db, "--models", "random,oracle"])
    assert result.exit_code == 2 and "unknown model 'oracle'" in result.output
    result = runner.invoke(app, ["evaluate", "--db", db, "--scenario", "tepid"])
    assert result.exit_code == 2 and "unknown scenario" in result.output


def test_model_options_parse() -> None:
    assert parse_model_options(["seed.max_epochs=3", "seed.hidden=[8,4]", "als.n-factors=16"]) == {
        "seed": {"max_epochs": 3, "hidden": (8, 4)}, "als": {"n_factors": 16},
    }
    with pytest.raises(ValueError, match="MODEL.KEY=VALUE"):
        parse_model_options(["max_epochs=3"])


def test_evaluate_reports_exposure_and_reranks(db: str, tmp_path: Path) -> None:
    out = tmp_path / "rerank.json"
    args = ["evaluate", "--db", db, "--scenario", "cold-item", "--models", "popularity,content-knn",
            "--folds", "1", "--json", str(out)]
    result = runner.invoke(app, args + ["--rerank", "cold-share=0.5"])
    assert result.exit_code == 0, result.output
    assert "exposure in top-20" in result.output and "cold share" in result.output and "overall" in result.output
    doc = json.loads(out.read_text())
    assert doc["rerank"] == "cold-share=0.5"
    for r in doc["results"]:
        overall = r["rankings"]["overall"]["metrics"]
        assert overall["cold_exposure@20"]["mean"] >= 0.5  # half of every top-20 list
        assert {"gini@20", "mean_popularity@20", "cold_recall@20", "warm_recall@20"} <= set(overall)
    result = runner.invoke(app, args + ["--rerank", "cold-share=2"])
    assert result.exit_code == 2 and "[0, 1]" in result.output
    # One model only, through the registry option.
    result = runner.invoke(app, args + ["--model-option", "popularity.rerank=cold-boost=100"])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    shares = {r["model"]: r["rankings"]["overall"]["metrics"]["cold_exposure@20"]["mean"] for r in doc["results"]}
    assert shares["popularity"] > 0.9 and doc["rerank"] is None
