"""The generic CSV/JSONL importer: mappings, and bad input that names file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thaw.data.errors import InputError
from thaw.data.importer import ImportSpec, files_in, guess_kind, import_files
from thaw.data.store import Store


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def catalogue(tmp_path: Path) -> Path:
    folder = tmp_path / "shop"
    folder.mkdir()
    _write(folder / "items.csv", "sku,name,text,colour\nA1,Red scarf,wool,red\nB2,Blue hat,,blue\n")
    _write(
        folder / "users.jsonl",
        json.dumps({"id": "u1", "attributes": {"age": 30}, "text": "knits"}) + "\n\n"
        + json.dumps({"id": 7, "city": "Oslo"}) + "\n",
    )
    _write(
        folder / "events.csv",
        "user,item,type,value,timestamp\n"
        "u1,A1,purchase,,2024-03-01T10:00:00Z\n"
        "7,B2,rating,4.5,1709287200\n",
    )
    return folder


def _mapping(folder: Path) -> list[ImportSpec]:
    return [
        ImportSpec(p, guess_kind(p), {"id": "sku", "title": "name"} if "items" in p.name else {})
        for p in files_in(folder)
    ]


def test_a_directory_imports_with_a_column_mapping(store: Store, catalogue: Path) -> None:
    result = import_files(store, _mapping(catalogue))
    assert result.inserted == 2 + 2 + 2
    scarf = store.get_items(["A1"])[0]
    assert (scarf.title, scarf.text, scarf.attributes) == ("Red scarf", "wool", {"colour": "red"})
    assert store.get_items(["B2"])[0].text is None
    assert store.get_users(["7"])[0].attributes == {"city": "Oslo"}
    assert store.get_users(["u1"])[0].attributes == {"age": 30}
    events = list(store.iter_events())
    assert [(e.user, e.item, e.type, e.value) for e in events] == [
        ("u1", "A1", "purchase", None),
        ("7", "B2", "rating", 4.5),
    ]


def test_reimporting_the_same_files_changes_nothing(store: Store, catalogue: Path) -> None:
    import_files(store, _mapping(catalogue))
    before = store.stats()
    again = import_files(store, _mapping(catalogue))
    assert (again.inserted, again.updated) == (0, 0)
    assert store.stats() == before


def test_events_may_refer_to_users_and_items_already_stored(store: Store, catalogue: Path) -> None:
    import_files(store, _mapping(catalogue))
    more = _write(catalogue.parent / "more.csv", "who,what,when\nu1,B2,2024-05-01\n")
    import_files(store, [ImportSpec(more, "events", {"user": "who", "item": "what", "timestamp": "when"},
                                    default_event_type="click")])
    assert store.stats().events_by_type == {"click": 1, "purchase": 1, "rating": 1}


BAD_EVENTS = [
    pytest.param("user,item,type,timestamp\nu1,A1,purchase\n", 2, None, "3 values for 4 columns",
                 id="short-row"),
    pytest.param("user,type,timestamp\nu1,purchase,2024-01-01\n", 2, "item", "required value is missing",
                 id="missing-column"),
    pytest.param("user,item,type,timestamp\nu1,A1,purchase,2024-01-01\nghost,A1,click,2024-01-02\n",
                 3, "user", "unknown user 'ghost'", id="unknown-user"),
    pytest.param("user,item,type,timestamp\nu1,Z9,click,2024-01-01\n", 2, "item", "unknown item 'Z9'",
                 id="unknown-item"),
    pytest.param("user,item,type,value,timestamp\nu1,A1,rating,five,2024-01-01\n", 2, "value",
                 "'five' is not a number", id="value-not-number"),
    pytest.param("user,item,type,timestamp\nu1,A1,click,yesterday\n", 2, "timestamp",
                 "not ISO 8601", id="bad-timestamp"),
    pytest.param("user,item,type,timestamp\nu1,A1,like,2024-01-01\n", 2, "type",
                 "'like' is not one of", id="bad-type"),
]


@pytest.mark.parametrize(("content", "line", "field", "message"), BAD_EVENTS)
def test_bad_event_rows_name_file_line_field_and_write_nothing(
    store: Store, catalogue: Path, content: str, line: int, field: str | None, message: str
) -> None:
    _write(catalogue / "events.csv", content)
    with pytest.raises(InputError) as info:
        import_files(store, _mapping(catalogue))
    error = info.value
    assert error.path.endswith("events.csv")
    assert (error.line, error.field) == (line, field)
    assert message in str(error)
    # users and items come from other files of the same import: none of them landed either
    stats = store.stats()
    assert (stats.users, stats.items, stats.events) == (0, 0, 0)


def test_bad_jsonl_line_is_named(store: Store, tmp_path: Path) -> None:
    path = _write(tmp_path / "users.jsonl", '{"id": "a"}\n{"id": "b",\n')
    with pytest.raises(InputError) as info:
        import_files(store, [ImportSpec(path, "users")])
    assert (info.value.line, info.value.field) == (2, None)
    assert "not valid JSON" in str(info.value)
    assert store.stats().users == 0


def test_wrong_json_types_are_named(store: Store, tmp_path: Path) -> None:
    path = _write(tmp_path / "items.jsonl", '{"id": "a", "title": 5}\n')
    with pytest.raises(InputError, match="line 1: field 'title': must be text"):
        import_files(store, [ImportSpec(path, "items")])
    path = _write(tmp_path / "items.jsonl", '{"id": "a", "attributes": [1, 2]}\n')
    with pytest.raises(InputError, match="field 'attributes': must be a JSON object"):
        import_files(store, [ImportSpec(path, "items")])


def test_a_mapped_column_that_is_absent_is_named(store: Store, tmp_path: Path) -> None:
    path = _write(tmp_path / "items.csv", "id,name\n1,x\n")
    with pytest.raises(InputError, match="field 'heading': missing column"):
        import_files(store, [ImportSpec(path, "items", {"title": "heading"})])


def test_a_failure_in_a_later_file_leaves_earlier_files_unwritten(store: Store, catalogue: Path) -> None:
    import_files(store, _mapping(catalogue))
    before = store.stats()
    _write(catalogue / "users.jsonl", json.dumps({"id": "u2"}) + "\n")
    _write(catalogue / "events.csv", "user,item,type,timestamp\nu2,A1,click,nonsense\n")
    with pytest.raises(InputError):
        import_files(store, _mapping(catalogue))
    assert store.stats() == before
    assert store.get_users(["u2"]) == []


def test_empty_file_and_unknown_names(store: Store, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="empty file"):
        import_files(store, [ImportSpec(_write(tmp_path / "items.csv", ""), "items")])
    with pytest.raises(ValueError, match="cannot tell"):
        guess_kind(tmp_path / "stuff.csv")
    with pytest.raises(ValueError, match="cannot map"):
        ImportSpec(tmp_path / "items.csv", "items", {"colour": "c"})
