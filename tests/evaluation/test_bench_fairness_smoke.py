"""The fairness benchmark end to end on one MovieLens fold with a tiny grid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_fairness_smoke(tmp_path: Path, data_dir: Path) -> None:
    env = {**os.environ, "THAW_DATA": str(data_dir), "HF_HUB_OFFLINE": "1", "THAW_THREADS": "1"}
    docs, results = tmp_path / "docs" / "fairness.md", tmp_path / "fairness.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_fairness.py"), "--datasets", "ml-100k", "--folds", "1",
         "--models", "content-knn", "--boost", "1", "--share", "0.3", "--encoder", "none", "--jobs", "1",
         "--results", str(results), "--docs", str(docs), "--db-dir", str(tmp_path / "db")],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(results.read_text())
    out = doc["datasets"]["ml-100k"]
    assert out["cold_and_warm_rankings_unchanged_by_boost"] == {"content-knn": True}
    share = {(p["method"], p["strength"]): p["test"]["cold_exposure@20"]["mean"] for p in out["points"]}
    assert share[("cold-share", 0.3)] >= 0.3 and share[("cold-boost", 1.0)] >= share[("none", 0.0)]
    assert {c["rule"] for c in out["chosen"]} == {"most accurate", "keeps 95%"}
    text = docs.read_text()
    assert text.startswith("# Fairness") and "python bench/bench_fairness.py --datasets ml-100k" in text
    assert (docs.parent / "img" / "fairness.png").is_file()
