"""Loaders for the real datasets: MovieLens 100K and CiteULike-a, with their own ids.

Everything the dataset has goes in. Counts are verified on load, so a damaged copy fails loudly
instead of quietly producing different numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from thaw.data.errors import DatasetCountError, DatasetNotFoundError, InputError
from thaw.data.records import EventRecord, ItemRecord, UserRecord, WriteResult
from thaw.data.store import Store

ProgressHook = Callable[[str, int, int], None]
"""Called as hook(stage, done, total) while a dataset is written."""

CITEULIKE_TITLES = "third_party_titles_TopicModelsVB.jl/citeutitles.txt"
# CiteULike-a has no timestamps: every library entry gets this moment and keeps file order.
CITEULIKE_TIME = datetime(2013, 1, 1)


@dataclass(frozen=True)
class DatasetSpec:
    """A known dataset: its folder name, required files and expected counts."""

    name: str
    files: tuple[str, ...]
    n_users: int
    n_items: int
    n_events: int


DATASETS: dict[str, DatasetSpec] = {
    "ml-100k": DatasetSpec("ml-100k", ("u.data", "u.user", "u.item", "u.genre"), 943, 1682, 100_000),
    "citeulike-a": DatasetSpec(
        "citeulike-a",
        ("users.dat", CITEULIKE_TITLES, "item-tag.dat", "tags.dat", "citations.dat"),
        5551,
        16980,
        204_986,
    ),
}


@dataclass(frozen=True)
class DatasetRecords:
    """A dataset read into records, ready for the store."""

    name: str
    users: list[UserRecord]
    items: list[ItemRecord]
    events: list[EventRecord]


def dataset_dir(name: str, data_dir: Path) -> Path:
    """The folder of dataset `name` under `data_dir`, checked for every required file."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    spec = DATASETS[name]
    folder = Path(data_dir) / name
    if not folder.is_dir():
        raise DatasetNotFoundError(name, folder, [f"directory {folder}"])
    missing = [f for f in spec.files if not (folder / f).is_file()]
    if missing:
        raise DatasetNotFoundError(name, folder, missing)
    return folder


def load_dataset(name: str, data_dir: Path) -> DatasetRecords:
    """Read dataset `name` from `data_dir` and verify its counts."""
    folder = dataset_dir(name, data_dir)
    records = _LOADERS[name](folder)
    spec = DATASETS[name]
    got = (len(records.users), len(records.items), len(records.events))
    want = (spec.n_users, spec.n_items, spec.n_events)
    if got != want:
        raise DatasetCountError(
            f"{name} in {folder} has {got[0]} users / {got[1]} items / {got[2]} events; "
            f"expected {want[0]} / {want[1]} / {want[2]} — is the copy complete?"
        )
    return records


def ingest_dataset(
    store: Store,
    name: str,
    data_dir: Path,
    *,
    batch_size: int = 10_000,
    progress: ProgressHook | None = None,
) -> WriteResult:
    """Load a dataset and write it in one transaction; re-ingesting changes nothing."""
    records = load_dataset(name, data_dir)
    return write_records(
        store, records.users, records.items, records.events, batch_size=batch_size, progress=progress
    )


def write_records(
    store: Store,
    users: list[UserRecord],
    items: list[ItemRecord],
    events: list[EventRecord],
    *,
    batch_size: int = 10_000,
    progress: ProgressHook | None = None,
) -> WriteResult:
    """Write users, items, then events in batches, all in one transaction."""
    total = WriteResult()
    with store.transaction() as tx:
        for stage, rows, write in (
            ("users", users, tx.upsert_users),
            ("items", items, tx.upsert_items),
            ("events", events, tx.add_events),
        ):
            for start in range(0, len(rows), batch_size):
                total = total + write(rows[start : start + batch_size])
                if progress:
                    progress(stage, min(start + batch_size, len(rows)), len(rows))
            if progress and not rows:
                progress(stage, 0, 0)
    return total


# ---------------------------------------------------------------------- MovieLens 100K
def _load_movielens(folder: Path) -> DatasetRecords:
    genres = [
        line.split("|")[0]
        for line in _lines(folder / "u.genre")
        if line.strip()
    ]
    users = []
    for n, line in enumerate(_lines(folder / "u.user"), 1):
        fields = _split(line, "|", 5, folder / "u.user", n)
        users.append(
            UserRecord(
                fields[0],
                {
                    "age": _int(fields[1], folder / "u.user", n, "age"),
                    "gender": fields[2],
                    "occupation": fields[3],
                    "zip": fields[4],
                },
            )
        )
    items = []
    for n, line in enumerate(_lines(folder / "u.item"), 1):
        fields = _split(line, "|", 5 + len(genres), folder / "u.item", n)
        flags = fields[5:]
        attributes: dict[str, object] = {
            "genres": [g for g, flag in zip(genres, flags, strict=True) if flag == "1"],
        }
        release = _movielens_date(fields[2], folder / "u.item", n)
        if release is not None:
            attributes["release_date"] = release.date().isoformat()
            attributes["year"] = release.year
        if fields[3].strip():
            attributes["video_release_date"] = fields[3].strip()
        if fields[4].strip():
            attributes["imdb_url"] = fields[4].strip()
        items.append(ItemRecord(fields[0], title=fields[1], attributes=attributes))
    events = []
    for n, line in enumerate(_lines(folder / "u.data"), 1):
        fields = _split(line, "\t", 4, folder / "u.data", n)
        user, item = fields[0], fields[1]
        events.append(
            EventRecord(
                user,
                item,
                "rating",
                datetime.fromtimestamp(_int(fields[3], folder / "u.data", n, "timestamp"), timezone.utc),
                value=float(_int(fields[2], folder / "u.data", n, "rating")),
                idempotency_key=f"ml-100k:{user}:{item}",
            )
        )
    return DatasetRecords("ml-100k", users, items, events)


def _movielens_date(text: str, path: Path, line: int) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        return datetime.strptime(text, "%d-%b-%Y")
    except ValueError as exc:
        raise InputError(path, line, "release date", f"cannot read {text!r} as DD-Mon-YYYY") from exc


# ---------------------------------------------------------------------- CiteULike-a
def _load_citeulike(folder: Path) -> DatasetRecords:
    titles = list(_lines(folder / CITEULIKE_TITLES))
    tag_names = list(_lines(folder / "tags.dat"))
    item_tags = _id_lists(folder / "item-tag.dat")
    citations = _id_lists(folder / "citations.dat")
    for path, rows in (("item-tag.dat", item_tags), ("citations.dat", citations)):
        if len(rows) != len(titles):
            raise InputError(
                folder / path, None, None, f"has {len(rows)} lines but there are {len(titles)} titles"
            )
    items = []
    for i, title in enumerate(titles):
        unknown_tags = [t for t in item_tags[i] if t >= len(tag_names)]
        if unknown_tags:
            raise InputError(folder / "item-tag.dat", i + 1, "tag id", f"no tag {unknown_tags[0]}")
        derived = {
            "tags": [tag_names[t] for t in item_tags[i]],
            "citations": [str(c) for c in citations[i]],
        }
        items.append(ItemRecord(str(i), title=title.strip(), derived=derived))

    libraries = _id_lists(folder / "users.dat")
    users = [UserRecord(str(u)) for u in range(len(libraries))]
    events = []
    for u, library in enumerate(libraries):
        for article in library:
            if article >= len(titles):
                raise InputError(folder / "users.dat", u + 1, "article id", f"no article {article}")
            events.append(
                EventRecord(
                    str(u), str(article), "purchase", CITEULIKE_TIME,
                    idempotency_key=f"citeulike-a:{u}:{article}",
                )
            )
    return DatasetRecords("citeulike-a", users, items, events)


def _id_lists(path: Path) -> list[list[int]]:
    """Lines of the form `count id id …`; the count is checked against the ids that follow."""
    rows = []
    for n, line in enumerate(_lines(path), 1):
        numbers = [_int(x, path, n, "id") for x in line.split()]
        if not numbers or numbers[0] != len(numbers) - 1:
            raise InputError(path, n, "count", f"says {numbers[:1]} but {len(numbers) - 1} ids follow")
        rows.append(numbers[1:])
    return rows


# ---------------------------------------------------------------------- helpers
def _lines(path: Path) -> list[str]:
    # MovieLens titles are Latin-1; CiteULike files are ASCII/UTF-8.
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.splitlines()


def _split(line: str, sep: str, n_fields: int, path: Path, number: int) -> list[str]:
    fields = line.split(sep)
    if len(fields) != n_fields:
        raise InputError(path, number, None, f"expected {n_fields} fields separated by {sep!r}, got {len(fields)}")
    return fields


def _int(text: str, path: Path, line: int, field: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise InputError(path, line, field, f"{text!r} is not an integer") from exc


_LOADERS: dict[str, Callable[[Path], DatasetRecords]] = {
    "ml-100k": _load_movielens,
    "citeulike-a": _load_citeulike,
}
