"""ColdRec/ALDI split directories: round trip, ALDI's file names, clear errors, leak refusal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from thaw.data.errors import InputError
from thaw.evaluation.coldrec import read_split_dir, write_split_dir
from thaw.evaluation.harness import run
from thaw.evaluation.splits import make_split


def _same_pairs(a, b, n_items) -> bool:
    return np.array_equal(np.sort(a.keys(n_items)), np.sort(b.keys(n_items)))


@pytest.mark.parametrize("scenario", ["cold-item", "cold-user", "warm"])
def test_round_trip(snapshot, tmp_path: Path, scenario: str) -> None:
    split = make_split(snapshot, scenario, fold=2, seed=7)
    files = write_split_dir(split, snapshot, tmp_path)
    assert (tmp_path / "warm_train.csv").read_text().splitlines()[0] == "user,item"
    back = read_split_dir(tmp_path, snapshot, seed=7)
    assert back.scenario == scenario
    n = snapshot.n_items
    for name in ("train", "val", "test"):
        assert _same_pairs(getattr(split, name), getattr(back, name), n), name
    assert np.array_equal(split.cold_items, back.cold_items)
    assert np.array_equal(split.cold_users, back.cold_users)
    if scenario != "warm":
        obj = scenario.split("-")[1]
        assert {p.name for p in files} >= {f"cold_{obj}_val.csv", f"cold_{obj}_test.csv", f"cold_{obj}.csv"}


def test_read_split_evaluates_like_the_original(snapshot, tmp_path: Path) -> None:
    split = make_split(snapshot, "cold-item", fold=0)
    write_split_dir(split, snapshot, tmp_path)
    direct = run(["popularity", "content-knn"], snapshot, "cold-item", folds=1)
    from_dir = run(["popularity", "content-knn"], snapshot, "cold-item",
                   splits=[read_split_dir(tmp_path, snapshot)])
    for model in ("popularity", "content-knn"):
        for ranking in direct.rankings:
            assert direct.summary(model, ranking) == from_dir.summary(model, ranking)


def test_aldi_layout_trains_on_emb_and_map(snapshot, tmp_path: Path) -> None:
    split = make_split(snapshot, "cold-item", fold=1)
    write_split_dir(split, snapshot, tmp_path)
    lines = (tmp_path / "warm_train.csv").read_text().splitlines()
    half = 1 + (len(lines) - 1) // 2
    (tmp_path / "warm_emb.csv").write_text("\n".join(lines[:half]) + "\n")
    (tmp_path / "warm_map.csv").write_text("\n".join([lines[0]] + lines[half:]) + "\n")
    (tmp_path / "warm_train.csv").unlink()
    back = read_split_dir(tmp_path, snapshot)
    assert _same_pairs(split.train, back.train, snapshot.n_items)


def test_unknown_id_names_file_and_line(snapshot, tmp_path: Path) -> None:
    write_split_dir(make_split(snapshot, "cold-item"), snapshot, tmp_path)
    path = tmp_path / "warm_val.csv"
    lines = path.read_text().splitlines()
    lines.insert(3, "u0,no-such-item")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"warm_val\.csv, line 4: field 'item': unknown item id 'no-such-item'"):
        read_split_dir(tmp_path, snapshot)


def test_bad_header_and_missing_files(snapshot, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_split_dir(tmp_path / "nowhere", snapshot)
    with pytest.raises(FileNotFoundError, match="neither warm_emb.csv nor warm_train.csv"):
        read_split_dir(tmp_path, snapshot)
    tmp_path.joinpath("warm_train.csv").write_text("user,item\nu0,i0\n")
    with pytest.raises(FileNotFoundError, match="warm_val.csv"):
        read_split_dir(tmp_path, snapshot)
    tmp_path.joinpath("warm_val.csv").write_text("uid,iid\nu0,i1\n")
    tmp_path.joinpath("warm_test.csv").write_text("user,item\n")
    with pytest.raises(InputError, match=r"warm_val\.csv, line 1: expected the header"):
        read_split_dir(tmp_path, snapshot)


def test_a_leaking_split_is_refused(snapshot, tmp_path: Path) -> None:
    split = make_split(snapshot, "cold-item", fold=0)
    write_split_dir(split, snapshot, tmp_path)
    cold_line = (tmp_path / "cold_item_test.csv").read_text().splitlines()[1]
    with (tmp_path / "warm_train.csv").open("a") as handle:
        handle.write(cold_line + "\n")
    with pytest.raises(ValueError, match="cold item has training pairs"):
        read_split_dir(tmp_path, snapshot)


def test_layouts_without_a_place_are_refused(snapshot, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no place"):
        write_split_dir(make_split(snapshot, "onboarding-3"), snapshot, tmp_path)
