"""The quality benchmark's smoke version (what `make bench-quality-smoke` runs), end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_quality_smoke(tmp_path: Path, data_dir: Path) -> None:
    env = {**os.environ, "THAW_DATA": str(data_dir), "HF_HUB_OFFLINE": "1", "THAW_THREADS": "1"}
    docs = tmp_path / "docs" / "quality.md"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_quality.py"), "--smoke",
         "--results", str(tmp_path / "results"), "--docs", str(docs), "--db-dir", str(tmp_path / "db")],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    files = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert files == ["quality-ml-100k-cold-item.json", "quality-ml-100k-onboarding-3.json", "quality-ml-100k-warm.json"]
    doc = json.loads((tmp_path / "results" / "quality-ml-100k-cold-item.json").read_text())
    recall = {r["model"]: r["metrics"]["recall@20"]["mean"] for r in doc["results"]}
    assert recall["content-knn"] > 2 * recall["random"]  # content places cold items; ids cannot
    text = docs.read_text()
    assert "python bench/bench_quality.py --smoke" in text and "### ml-100k · onboarding-3" in text
    for line in text.splitlines():
        if line.startswith("!["):
            assert (docs.parent / line.split("(")[1].rstrip(")")).is_file()
