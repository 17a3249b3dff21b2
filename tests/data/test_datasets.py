"""The real datasets load with their own ids, everything they hold, and verified counts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from thaw.data.datasets import CITEULIKE_TITLES, ingest_dataset, load_dataset
from thaw.data.errors import DatasetCountError, DatasetNotFoundError, InputError
from thaw.data.store import Store


def test_movielens_has_everything_with_its_own_ids(data_dir: Path) -> None:
    data = load_dataset("ml-100k", data_dir)
    assert (len(data.users), len(data.items), len(data.events)) == (943, 1682, 100_000)
    user = data.users[0]
    assert user.id == "1"
    assert user.attributes == {"age": 24, "gender": "M", "occupation": "technician", "zip": "85711"}
    toy_story = data.items[0]
    assert (toy_story.id, toy_story.title) == ("1", "Toy Story (1995)")
    assert toy_story.attributes["genres"] == ["Animation", "Children's", "Comedy"]
    assert toy_story.attributes["release_date"] == "1995-01-01"
    assert toy_story.attributes["year"] == 1995
    first = data.events[0]
    assert (first.user, first.item, first.type, first.value) == ("196", "242", "rating", 3.0)
    assert int(first.timestamp.timestamp()) == 881250949
    assert {e.type for e in data.events} == {"rating"}
    assert len({e.idempotency_key for e in data.events}) == 100_000


def test_citeulike_titles_are_text_and_tags_are_interaction_derived(data_dir: Path) -> None:
    data = load_dataset("citeulike-a", data_dir)
    assert (len(data.users), len(data.items), len(data.events)) == (5551, 16980, 204_986)
    article = data.items[0]
    assert article.id == "0"
    assert article.title == "The metabolic world of Escherichia coli is not small"
    assert article.attributes == {}  # tags and citations are not content
    assert "metabolism" in article.derived["tags"]
    assert article.derived["citations"] == ["2", "485", "3284"]
    # user = line number of users.dat from 0; the first user's library starts with article 495
    assert data.users[0].id == "0"
    assert (data.events[0].user, data.events[0].item) == ("0", "495")


def test_missing_directory_names_the_path_searched(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("ml-100k", tmp_path)
    message = str(info.value)
    assert str((tmp_path / "ml-100k").resolve()) in message
    assert "THAW_DATA" in message


def test_missing_file_is_named(tmp_path: Path, data_dir: Path) -> None:
    copy = tmp_path / "citeulike-a"
    shutil.copytree(data_dir / "citeulike-a", copy)
    (copy / CITEULIKE_TITLES).unlink()
    with pytest.raises(DatasetNotFoundError, match="citeutitles.txt"):
        load_dataset("citeulike-a", tmp_path)


def test_a_truncated_copy_fails_its_count_check(tmp_path: Path, data_dir: Path) -> None:
    copy = tmp_path / "ml-100k"
    shutil.copytree(data_dir / "ml-100k", copy)
    lines = (copy / "u.data").read_text().splitlines()
    (copy / "u.data").write_text("\n".join(lines[:-10]) + "\n")
    with pytest.raises(DatasetCountError, match="99990 events"):
        load_dataset("ml-100k", tmp_path)


def test_a_damaged_line_names_file_line_and_field(tmp_path: Path, data_dir: Path) -> None:
    copy = tmp_path / "ml-100k"
    shutil.copytree(data_dir / "ml-100k", copy)
    lines = (copy / "u.data").read_text().splitlines()
    lines[4] = "186\t302\tthree\t891717742"
    (copy / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as info:
        load_dataset("ml-100k", tmp_path)
    assert (info.value.line, info.value.field) == (5, "rating")
    assert info.value.path.endswith("u.data")


def test_unknown_dataset_name() -> None:
    with pytest.raises(ValueError, match="known: ml-100k, citeulike-a"):
        load_dataset("netflix", Path("."))


def test_ingest_movielens_twice_changes_nothing(data_dir: Path, store: Store) -> None:
    first = ingest_dataset(store, "ml-100k", data_dir)
    assert first.inserted == 943 + 1682 + 100_000
    stats = store.stats()
    assert (stats.users, stats.items, stats.events) == (943, 1682, 100_000)
    assert stats.events_by_type == {"rating": 100_000}
    again = ingest_dataset(store, "ml-100k", data_dir)
    assert (again.inserted, again.updated) == (0, 0)
    assert store.stats() == stats


def test_ingest_citeulike_counts(data_dir: Path, store: Store) -> None:
    ingest_dataset(store, "citeulike-a", data_dir)
    stats = store.stats()
    assert (stats.users, stats.items, stats.events) == (5551, 16980, 204_986)
