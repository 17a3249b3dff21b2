"""Splits in the ColdRec / ALDI directory layout, so results compare with published tables.

Files (CSV, header `user,item`, ids = the store's external ids):
- training: `warm_emb.csv` (ALDI; plus `warm_map.csv` when present, which ALDI also trains on)
  or `warm_train.csv` (ColdRec);
- `warm_val.csv`, `warm_test.csv`: warm validation and test pairs;
- `cold_item_val.csv`, `cold_item_test.csv` (cold-item) or `cold_user_val.csv`,
  `cold_user_test.csv` (cold-user): the cold entities' pairs; absent for a warm split.
Writing also produces `cold_item.csv` / `cold_user.csv` (all cold pairs), as ColdRec does.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from thaw.data.dataset import Snapshot
from thaw.data.errors import InputError
from thaw.evaluation.splits import Pairs, Split, parse_scenario

_HEADER = ("user", "item")


def write_split_dir(split: Split, snapshot: Snapshot, directory: Path) -> list[Path]:
    """Write a warm, cold-item or cold-user split in the ColdRec layout; returns the files."""
    kind, _ = parse_scenario(split.scenario)
    if kind not in ("warm", "cold-item", "cold-user"):
        raise ValueError(f"the ColdRec layout has no place for {split.scenario!r} splits")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    obj = "item" if kind == "cold-item" else "user"

    def is_cold(pairs: Pairs) -> np.ndarray:
        if kind == "warm":
            return np.zeros(len(pairs), bool)
        return split.cold_items[pairs.item] if obj == "item" else split.cold_users[pairs.user]

    val_cold, test_cold = is_cold(split.val), is_cold(split.test)
    files = {
        "warm_train.csv": split.train,
        "warm_val.csv": split.val.subset(~val_cold),
        "warm_test.csv": split.test.subset(~test_cold),
    }
    if kind != "warm":
        files[f"cold_{obj}_val.csv"] = split.val.subset(val_cold)
        files[f"cold_{obj}_test.csv"] = split.test.subset(test_cold)
        files[f"cold_{obj}.csv"] = split.val.subset(val_cold).concat(split.test.subset(test_cold))
    written = []
    for name, pairs in files.items():
        path = directory / name
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(_HEADER)
            for u, i in zip(pairs.user, pairs.item, strict=True):
                writer.writerow((snapshot.user_ids[u], snapshot.item_ids[i]))
        written.append(path)
    return written


def read_split_dir(directory: Path, snapshot: Snapshot, *, seed: int = 0) -> Split:
    """Read a ColdRec/ALDI split directory against `snapshot`'s ids.

    Unknown ids and bad rows raise InputError naming the file and line; a cold entity with a
    training pair raises ValueError (that split would leak). Test pairs that repeat a training
    pair are dropped (counted in `stats["dropped_test_in_train"]`).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"split directory {directory} does not exist")
    if (directory / "warm_emb.csv").is_file():
        train = _read(directory / "warm_emb.csv", snapshot)
        if (directory / "warm_map.csv").is_file():
            train = train.concat(_read(directory / "warm_map.csv", snapshot))
    elif (directory / "warm_train.csv").is_file():
        train = _read(directory / "warm_train.csv", snapshot)
    else:
        raise FileNotFoundError(f"{directory} has neither warm_emb.csv nor warm_train.csv")
    warm_val = _read(_need(directory / "warm_val.csv"), snapshot)
    warm_test = _read(_need(directory / "warm_test.csv"), snapshot)

    scenario, cold_val, cold_test = "warm", Pairs.empty(), Pairs.empty()
    for obj in ("item", "user"):
        val_path, test_path = directory / f"cold_{obj}_val.csv", directory / f"cold_{obj}_test.csv"
        if val_path.is_file() or test_path.is_file():
            scenario = f"cold-{obj}"
            cold_val, cold_test = _read(_need(val_path), snapshot), _read(_need(test_path), snapshot)
            break
    n_users, n_items = snapshot.n_users, snapshot.n_items
    cold_users, cold_items = np.zeros(n_users, bool), np.zeros(n_items, bool)
    cold = cold_val.concat(cold_test)
    if scenario == "cold-item":
        cold_items[cold.item] = True
        leaked = np.isin(train.item, np.flatnonzero(cold_items))
    else:
        cold_users[cold.user] = True
        leaked = np.isin(train.user, np.flatnonzero(cold_users))
    if leaked.any():
        j = int(np.flatnonzero(leaked)[0])
        raise ValueError(
            f"{directory}: cold {scenario[5:]} has training pairs, e.g. user "
            f"{snapshot.user_ids[train.user[j]]!r}, item {snapshot.item_ids[train.item[j]]!r}"
        )
    train = _unique(train, n_items)
    test = _unique(warm_test.concat(cold_test), n_items)
    in_train = np.isin(test.keys(n_items), train.keys(n_items))
    return Split(
        scenario=scenario, fold=0, n_folds=1, seed=seed, n_users=n_users, n_items=n_items,
        train=train, val=_unique(warm_val.concat(cold_val), n_items), test=test.subset(~in_train),
        cold_users=cold_users, cold_items=cold_items,
        stats={"dropped_test_in_train": int(in_train.sum())},
    )


def _need(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"missing split file {path}")
    return path


def _unique(pairs: Pairs, n_items: int) -> Pairs:
    keys = np.unique(pairs.keys(n_items))
    return Pairs((keys // n_items).astype(np.int32), (keys % n_items).astype(np.int32))


def _read(path: Path, snapshot: Snapshot) -> Pairs:
    """The (user, item) rows of one split file, as snapshot indices."""
    users, items = [], []
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != list(_HEADER):
            raise InputError(path, 1, None, f"expected the header 'user,item', got {header}")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < 2:
                raise InputError(path, line, "item", "missing column")
            u, i = row[0].strip(), row[1].strip()
            if u not in snapshot.user_index:
                raise InputError(path, line, "user", f"unknown user id {u!r}")
            if i not in snapshot.item_index:
                raise InputError(path, line, "item", f"unknown item id {i!r}")
            users.append(snapshot.user_index[u])
            items.append(snapshot.item_index[i])
    return Pairs(np.asarray(users, np.int32), np.asarray(items, np.int32))
