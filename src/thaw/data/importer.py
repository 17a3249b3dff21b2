"""Generic importer: items, users and events from CSV or JSONL files, with a column mapping.

A file is read and validated completely before anything is written; the write is one transaction.
So a bad row (missing column, wrong type, unknown user or item) fails with its file, line and
field, and nothing from that import is half-written.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from thaw.data.datasets import ProgressHook, write_records
from thaw.data.errors import InputError, UnknownReferenceError
from thaw.data.records import (
    EVENT_TYPES,
    MAX_ID_LENGTH,
    EventRecord,
    ItemRecord,
    UserRecord,
    WriteResult,
)
from thaw.data.store import Store

KINDS = ("items", "users", "events")
FIELDS: dict[str, tuple[str, ...]] = {
    "items": ("id", "title", "text", "attributes", "derived", "created_at"),
    "users": ("id", "text", "attributes", "created_at"),
    "events": ("user", "item", "type", "value", "text", "timestamp", "idempotency_key"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "items": ("id",),
    "users": ("id",),
    "events": ("user", "item", "timestamp"),
}


@dataclass(frozen=True)
class ImportSpec:
    """One file to import: its kind and how its columns map to thaw's fields.

    `mapping` is {thaw field: column in the file}; unmapped fields use a column of the same
    name. Columns that map to no field become attributes (items and users).
    """

    path: Path
    kind: str
    mapping: Mapping[str, str] = field(default_factory=dict)
    default_event_type: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        unknown = set(self.mapping) - set(FIELDS[self.kind])
        if unknown:
            raise ValueError(
                f"cannot map {sorted(unknown)} for {self.kind}; fields are {', '.join(FIELDS[self.kind])}"
            )
        if self.default_event_type is not None and self.default_event_type not in EVENT_TYPES:
            raise ValueError(f"event type must be one of {', '.join(EVENT_TYPES)}")


def guess_kind(path: Path) -> str:
    """The kind a file holds, from its name (items.csv, users.jsonl, events.csv, …)."""
    stem = path.name.split(".")[0].lower()
    for kind in KINDS:
        if stem == kind or stem.endswith("_" + kind) or stem.endswith("-" + kind):
            return kind
    raise ValueError(
        f"{path}: cannot tell whether it holds items, users or events from its name; "
        "name it items.csv / users.jsonl / events.csv or pass --kind"
    )


def files_in(directory: Path) -> list[Path]:
    """Importable files in a directory, users and items before events."""
    found = [
        p for p in sorted(directory.iterdir()) if p.suffix.lower() in (".csv", ".jsonl", ".ndjson")
    ]
    if not found:
        raise ValueError(f"{directory}: no .csv or .jsonl files to import")
    order = {"users": 0, "items": 1, "events": 2}
    return sorted(found, key=lambda p: order.get(guess_kind(p), 3))


def import_files(
    store: Store, specs: list[ImportSpec], *, progress: ProgressHook | None = None
) -> WriteResult:
    """Parse and validate every file, then write them all in one transaction."""
    users: list[UserRecord] = []
    items: list[ItemRecord] = []
    events: list[tuple[EventRecord, ImportSpec, int]] = []
    for spec in specs:
        for line, row in _rows(spec.path):
            values = _mapped(spec, row, line)
            if spec.kind == "users":
                users.append(_user(spec, values, line))
            elif spec.kind == "items":
                items.append(_item(spec, values, line))
            else:
                events.append((_event(spec, values, line), spec, line))
    _check_references(store, users, items, events)
    return write_records(store, users, items, [e for e, _, _ in events], progress=progress)


# ---------------------------------------------------------------------- reading rows
def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise InputError(path, None, None, "no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        yield from _csv_rows(path)
    elif suffix in (".jsonl", ".ndjson"):
        yield from _jsonl_rows(path)
    else:
        raise InputError(path, None, None, "only .csv and .jsonl files can be imported")


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise InputError(path, 1, None, "empty file: expected a header row") from None
        header = [h.strip() for h in header]
        start = reader.line_num + 1
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                start = reader.line_num + 1
                continue
            if len(row) != len(header):
                raise InputError(path, start, None, f"{len(row)} values for {len(header)} columns")
            yield start, dict(zip(header, row, strict=True))
            start = reader.line_num + 1


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, 1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(path, number, None, f"not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise InputError(path, number, None, "each line must be a JSON object")
            yield number, row


def _mapped(spec: ImportSpec, row: dict[str, Any], line: int) -> dict[str, Any]:
    """{field: value} for thaw's fields, plus `_extra` for the other columns."""
    values: dict[str, Any] = {}
    used = set()
    for name in FIELDS[spec.kind]:
        column = spec.mapping.get(name, name)
        if column in row:
            used.add(column)
            value = row[column]
            if not (isinstance(value, str) and value == ""):
                values[name] = value
        elif name in spec.mapping:
            raise InputError(spec.path, line, column, f"missing column (mapped to {name!r})")
    for name in REQUIRED[spec.kind]:
        if name not in values:
            column = spec.mapping.get(name, name)
            raise InputError(spec.path, line, column, "required value is missing or empty")
    values["_extra"] = {k: v for k, v in row.items() if k not in used}
    return values


# ---------------------------------------------------------------------- typed fields
def _user(spec: ImportSpec, values: dict[str, Any], line: int) -> UserRecord:
    return UserRecord(
        _id(spec, values, "id", line),
        _attributes(spec, values, "attributes", line),
        _text(spec, values, "text", line),
        _time(spec, values, "created_at", line) if "created_at" in values else None,
    )


def _item(spec: ImportSpec, values: dict[str, Any], line: int) -> ItemRecord:
    return ItemRecord(
        _id(spec, values, "id", line),
        _text(spec, values, "title", line) or "",
        _text(spec, values, "text", line),
        _attributes(spec, values, "attributes", line),
        _object(spec, values, "derived", line),
        _time(spec, values, "created_at", line) if "created_at" in values else None,
    )


def _event(spec: ImportSpec, values: dict[str, Any], line: int) -> EventRecord:
    type_ = values.get("type", spec.default_event_type)
    if type_ is None:
        raise InputError(
            spec.path, line, spec.mapping.get("type", "type"),
            "missing; add a type column or pass a default event type",
        )
    if type_ not in EVENT_TYPES:
        raise InputError(
            spec.path, line, spec.mapping.get("type", "type"),
            f"{type_!r} is not one of {', '.join(EVENT_TYPES)}",
        )
    value = None
    if "value" in values:
        try:
            value = float(values["value"])
        except (TypeError, ValueError):
            raise InputError(
                spec.path, line, spec.mapping.get("value", "value"), f"{values['value']!r} is not a number"
            ) from None
    user = _id(spec, values, "user", line)
    item = _id(spec, values, "item", line)
    timestamp = _time(spec, values, "timestamp", line)
    text = _text(spec, values, "text", line)
    key = values.get("idempotency_key")
    if key is None:
        # Same content, same key: re-importing a file changes nothing.
        digest = hashlib.sha1(
            json.dumps([user, item, type_, value, timestamp.isoformat(), text]).encode()
        ).hexdigest()
        key = f"import:{digest}"
    return EventRecord(user, item, type_, timestamp, value, text, str(key))


def _id(spec: ImportSpec, values: dict[str, Any], name: str, line: int) -> str:
    value = values[name]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(spec.path, line, spec.mapping.get(name, name), "must be a string or integer id")
    text = str(value).strip()
    if not text or len(text) > MAX_ID_LENGTH:
        raise InputError(
            spec.path, line, spec.mapping.get(name, name), f"id must be 1 to {MAX_ID_LENGTH} characters"
        )
    return text


def _text(spec: ImportSpec, values: dict[str, Any], name: str, line: int) -> str | None:
    value = values.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(spec.path, line, spec.mapping.get(name, name), "must be text")
    return value


def _object(spec: ImportSpec, values: dict[str, Any], name: str, line: int) -> dict[str, Any]:
    value = values.get(name)
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InputError(
                spec.path, line, spec.mapping.get(name, name), "must be a JSON object"
            ) from None
    if not isinstance(value, dict):
        raise InputError(spec.path, line, spec.mapping.get(name, name), "must be a JSON object")
    return value


def _attributes(spec: ImportSpec, values: dict[str, Any], name: str, line: int) -> dict[str, Any]:
    attributes = dict(values["_extra"])
    attributes.update(_object(spec, values, name, line))
    return {k: v for k, v in attributes.items() if v != ""}


def _time(spec: ImportSpec, values: dict[str, Any], name: str, line: int) -> datetime:
    value = values[name]
    column = spec.mapping.get(name, name)
    if isinstance(value, bool):
        raise InputError(spec.path, line, column, "must be ISO 8601 or unix seconds")
    if isinstance(value, (int, float)) or (isinstance(value, str) and _is_number(value)):
        return datetime.fromtimestamp(float(value), timezone.utc)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    raise InputError(spec.path, line, column, f"{value!r} is not ISO 8601 or unix seconds")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_references(
    store: Store,
    users: list[UserRecord],
    items: list[ItemRecord],
    events: list[tuple[EventRecord, ImportSpec, int]],
) -> None:
    """Every event's user and item exists in the store or in this import; else name the line."""
    if not events:
        return
    known_users = {u.id for u in users} | {
        u.id for u in store.get_users(sorted({e.user for e, _, _ in events}))
    }
    known_items = {t.id for t in items} | {
        t.id for t in store.get_items(sorted({e.item for e, _, _ in events}))
    }
    for event, spec, line in events:
        for name, value, known in (("user", event.user, known_users), ("item", event.item, known_items)):
            if value not in known:
                raise InputError(
                    spec.path, line, spec.mapping.get(name, name),
                    f"unknown {name} {value!r}: not in the store nor in this import",
                ) from UnknownReferenceError(name, [value])
