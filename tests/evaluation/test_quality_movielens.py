"""Quality floors on real MovieLens 100K (fold 0): the claims the benchmark tables rest on."""

from __future__ import annotations

from pathlib import Path

import pytest

from thaw.data.dataset import snapshot_from_records
from thaw.data.datasets import load_dataset
from thaw.evaluation.harness import run_scenarios


@pytest.mark.slow
def test_movielens_cold_item_and_warm_floors(data_dir: Path) -> None:
    records = load_dataset("ml-100k", data_dir)
    snapshot = snapshot_from_records(records.users, records.items, records.events)
    reports = run_scenarios(
        ["random", "popularity", "content-knn", "als", "seed"], snapshot, ["cold-item"], folds=1,
        options={"als": {"n_factors": 32, "regularization": 5.0, "alpha": 2.0}},
    )
    report = reports["cold-item"]

    def recall(model: str, ranking: str) -> float:
        return report.summary(model, ranking)["recall@20"]["mean"]

    # Cold items: the ID-only seed model is near random, content-KNN well above.
    assert recall("content-knn", "cold") > 2.5 * recall("random", "cold")
    assert abs(recall("seed", "cold") - recall("random", "cold")) < 0.3 * (recall("content-knn", "cold") - recall("random", "cold"))
    # Warm items: collaborative models beat popularity, which beats random.
    assert recall("als", "warm") > 1.3 * recall("popularity", "warm") > 5 * recall("random", "warm")
    assert recall("seed", "warm") > recall("random", "warm") * 5
