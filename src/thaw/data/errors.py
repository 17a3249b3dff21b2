"""Errors raised by the data layer, each naming what is wrong and where."""

from __future__ import annotations

from pathlib import Path


class ThawDataError(Exception):
    """Base class for data-layer errors."""


class StoreUnavailableError(ThawDataError):
    """The store at a URL cannot be opened or migrated."""


class UnknownReferenceError(ThawDataError):
    """Events refer to users or items the store does not know."""

    def __init__(self, kind: str, ids: list[str]) -> None:
        self.kind = kind
        self.ids = ids
        shown = ", ".join(repr(i) for i in ids[:5]) + (" …" if len(ids) > 5 else "")
        super().__init__(f"unknown {kind} id(s) in events: {shown} ({len(ids)} in all)")


class InputError(ThawDataError):
    """A bad row in an input file: names the file, the line and the field."""

    def __init__(self, path: Path | str, line: int | None, field: str | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        where = self.path + (f", line {line}" if line is not None else "")
        what = f"field {field!r}: " if field else ""
        super().__init__(f"{where}: {what}{message}")


class DatasetNotFoundError(ThawDataError):
    """A dataset directory or one of its files is missing."""

    def __init__(self, name: str, searched: Path, missing: list[str]) -> None:
        self.name = name
        self.searched = searched
        self.missing = missing
        super().__init__(
            f"dataset {name!r} not found: searched {searched.resolve()}; missing: "
            + ", ".join(missing)
            + ". Set THAW_DATA (or --data-dir) to the folder that holds it."
        )


class DatasetCountError(ThawDataError):
    """A dataset loaded with other counts than it is known to have (a damaged or different copy)."""
