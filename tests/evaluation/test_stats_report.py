"""Significance tests, Markdown tables, JSON documents and plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from thaw.evaluation.harness import run
from thaw.evaluation.report import metrics_table, report_json, report_markdown, write_report_dir
from thaw.evaluation.stats import comparisons, paired_t, wilcoxon


def test_paired_t_matches_the_formula() -> None:
    a, b = np.array([0.30, 0.32, 0.29, 0.35, 0.31]), np.array([0.25, 0.30, 0.27, 0.30, 0.30])
    d = a - b
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    want = 2 * scipy_stats.t.sf(abs(t), df=len(d) - 1)
    assert paired_t(a, b) == pytest.approx(want)
    assert math.isnan(paired_t(a[:1], b[:1]))  # one fold: undefined
    assert math.isnan(paired_t(a, a - 0.1))  # constant difference: undefined


def test_wilcoxon_edge_cases() -> None:
    assert wilcoxon(np.zeros(5), np.zeros(5)) == 1.0
    rng = np.random.default_rng(0)
    x = rng.random(200)
    assert wilcoxon(x + 0.2, x) < 1e-10
    assert wilcoxon(x, x[::-1]) > 0.05


@pytest.fixture(scope="module")
def report(snapshot):
    return run(["random", "popularity", "content-knn"], snapshot, "cold-item", folds=3)


def test_comparisons_against_the_best_baseline(report) -> None:
    items = comparisons(report, ["random", "popularity", "content-knn"], ["recall@20"], ["cold"])
    best = max(("random", "popularity", "content-knn"),
               key=lambda m: report.model(m).per_fold("cold", "recall@20").mean())
    assert {c.reference for c in items if c.model != best} == {best}
    assert len(items) == 3  # two against the best, the best against the runner-up
    assert all(c.n_folds == 3 and c.n_users > 0 for c in items)
    # A non-baseline model is compared with the best baseline only.
    items = comparisons(report, ["random", "popularity"], ["recall@20"], ["cold"])
    best_baseline = max(("random", "popularity"),
                        key=lambda m: report.model(m).per_fold("cold", "recall@20").mean())
    assert [(c.model, c.reference) for c in items] == [("content-knn", best_baseline)]


def test_json_document_shape(report) -> None:
    doc = json.loads(json.dumps(report_json(report), allow_nan=False))
    assert doc["scenario"] == "cold-item" and doc["folds"] == 3
    assert [r["model"] for r in doc["results"]] == ["random", "popularity", "content-knn"]
    for result in doc["results"]:
        recall = result["metrics"]["recall@20"]
        assert set(recall) == {"mean", "std", "per_fold"} and len(recall["per_fold"]) == 3
        assert recall["mean"] == pytest.approx(np.mean(recall["per_fold"]))
        assert recall["std"] == pytest.approx(np.std(recall["per_fold"], ddof=1))
        assert isinstance(result["fit_seconds"], float)
        assert set(result["rankings"]) == {"cold", "warm", "overall"}
        assert result["metrics"] == result["rankings"]["cold"]["metrics"]
        for name in ("ndcg@10", "precision@50", "hitrate@20", "mrr", "auc", "coverage@20", "cold_exposure@20"):
            assert name in result["metrics"]
    assert doc["significance"]


def test_markdown_bolds_the_best(report) -> None:
    table = metrics_table(report, "cold")
    best = max(report.models, key=lambda r: r.per_fold("cold", "recall@20").mean()).model
    row = next(line for line in table.splitlines() if line.startswith(f"| {best} "))
    recall_cell = row.split("|")[3]  # model, recall@10, recall@20
    assert recall_cell.strip().startswith("**")
    text = report_markdown(report)
    assert "Wilcoxon" in text and "`overall` ranking" in text


def test_report_directory(report, tmp_path: Path) -> None:
    paths = write_report_dir(report, tmp_path)
    for key in ("json", "recall", "bars", "markdown"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0
    assert paths["recall"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![Recall@K](recall_at_k.png)" in paths["markdown"].read_text()
