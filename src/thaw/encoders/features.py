"""Attribute dictionaries (genres, occupation, age, …) as model inputs learned from training rows only.

`AttributeEncoder.fit` looks only at the rows it is given (the training entities), so neither a
category nor a mean/std can leak in from validation or test entities. Each field becomes:

- **categorical** (a string, a bool, or a list of strings such as genres): multi-hot columns over
  the values seen at least `min_count` times (at most `max_categories`, most frequent first),
  plus one `<other>` column for rarer or unseen values. A missing value sets no column.
- **prefix** (a high-cardinality *code*, e.g. a zip code): as categorical, over the value's first
  k characters (see the rule below).
- **numeric** (ints and floats) and **date** (ISO `YYYY-MM-DD…` strings, as fractional years):
  standardised with the fitted mean and std, NaN/missing -> 0, plus a 0/1 missing column.
- **dropped**: fields with nothing to learn from (see `dropped_` for the reason of each).

High-cardinality rule. A string field whose kept vocabulary covers less than `min_coverage` of
its present values in the fitted rows is identifier-like: its values are mostly unique. If the
values look like short codes (at most 12 characters, no spaces, not URLs), the field is bucketed
by prefix: the longest k <= `max_prefix_length` whose prefixes number at most
`max_prefix_categories` and cover at least `min_coverage` (MovieLens zip codes become their first
digit: a region). Otherwise (URLs, free ids, free text) the field is dropped; free text belongs
in the text encoder.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
from scipy import sparse

KINDS = ("categorical", "prefix", "numeric", "date", "drop")
OTHER = "<other>"
_FORMAT = 1
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MAX_CODE_LENGTH = 12


@dataclass(frozen=True)
class FieldSpec:
    """How one attribute field is encoded (learned in `fit`)."""

    name: str
    kind: str
    vocabulary: tuple[str, ...] = ()  # categorical/prefix: one column each, then the <other> column
    prefix_length: int = 0
    mean: float = 0.0
    std: float = 1.0


@dataclass(frozen=True, eq=False)
class AttributeFeatures:
    """Encoded attributes of n entities: sparse multi-hot categories and dense standardised numbers."""

    categorical: sparse.csr_matrix  # (n, n_categorical_columns) float32 0/1
    numeric: np.ndarray  # (n, n_numeric_columns) float32: per field [standardised value, missing]
    categorical_fields: tuple[str, ...]
    numeric_fields: tuple[str, ...]
    field_of_column: np.ndarray  # (n_categorical_columns,) int64 index into categorical_fields
    numeric_field_of_column: np.ndarray  # (n_numeric_columns,) int64 index into numeric_fields
    categorical_columns: tuple[str, ...] = field(default=())  # "occupation=writer", "occupation=<other>"
    numeric_columns: tuple[str, ...] = field(default=())  # "age", "age:missing"

    def __len__(self) -> int:
        return self.numeric.shape[0]

    def take(self, rows: Sequence[int] | np.ndarray) -> AttributeFeatures:
        """The features of some rows, in the order given."""
        index = np.asarray(rows, dtype=np.int64)
        return AttributeFeatures(
            self.categorical[index],
            self.numeric[index],
            self.categorical_fields,
            self.numeric_fields,
            self.field_of_column,
            self.numeric_field_of_column,
            self.categorical_columns,
            self.numeric_columns,
        )


class AttributeEncoder:
    """Learns per-field encodings from training rows; turns attribute dicts into `AttributeFeatures`.

    Parameters
    ----------
    min_count: a category needs this many fitted rows to get its own column (rarer -> `<other>`,
        which keeps the `<other>` column trained for unseen values at serving time).
    max_categories: at most this many columns per field, the most frequent.
    min_coverage: share of present values a vocabulary must cover, else the field is
        identifier-like (prefix-bucketed or dropped, see the module docstring).
    kinds: force a field's kind ({"zip": "prefix", "id": "drop"}); others are detected.
    """

    def __init__(
        self,
        *,
        min_count: int = 2,
        max_categories: int = 1000,
        min_coverage: float = 0.5,
        max_prefix_length: int = 3,
        max_prefix_categories: int = 32,
        kinds: Mapping[str, str] | None = None,
    ) -> None:
        self.min_count = min_count
        self.max_categories = max_categories
        self.min_coverage = min_coverage
        self.max_prefix_length = max_prefix_length
        self.max_prefix_categories = max_prefix_categories
        self.kinds = kinds

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments."""
        return {
            "min_count": self.min_count,
            "max_categories": self.max_categories,
            "min_coverage": self.min_coverage,
            "max_prefix_length": self.max_prefix_length,
            "max_prefix_categories": self.max_prefix_categories,
            "kinds": dict(self.kinds) if self.kinds is not None else None,
        }

    def fit(
        self, attribute_dicts: Sequence[Mapping[str, Any]], rows: Sequence[int] | np.ndarray | None = None
    ) -> AttributeEncoder:
        """Learn each field's encoding from `attribute_dicts[rows]` only (all rows if None)."""
        self._validate_params()
        dicts = _check_dicts(attribute_dicts)
        index = np.arange(len(dicts)) if rows is None else _row_indices(rows, len(dicts))
        fit_rows = [dicts[i] for i in index]
        names = sorted({key for d in fit_rows for key in d})
        specs: list[FieldSpec] = []
        dropped: dict[str, str] = {}
        for name in names:
            rows_present = [
                (int(r), d[name])
                for r, d in zip(index, fit_rows, strict=True)
                if name in d and not _is_missing(d[name])
            ]
            spec, reason = self._fit_field(name, rows_present)
            if spec is None:
                dropped[name] = reason
            else:
                specs.append(spec)
        self.fields_ = tuple(specs)
        self.dropped_ = dropped
        self.n_fit_rows_ = len(fit_rows)
        return self

    def transform(self, attribute_dicts: Sequence[Mapping[str, Any]]) -> AttributeFeatures:
        """Encode attribute dicts with the fitted fields; unknown fields are ignored."""
        if not hasattr(self, "fields_"):
            raise RuntimeError("AttributeEncoder is not fitted: call fit() first")
        dicts = _check_dicts(attribute_dicts)
        categorical_specs = [s for s in self.fields_ if s.kind in ("categorical", "prefix")]
        numeric_specs = [s for s in self.fields_ if s.kind in ("numeric", "date")]

        row_idx: list[int] = []
        col_idx: list[int] = []
        field_of_column: list[int] = []
        column_names: list[str] = []
        offset = 0
        for f, spec in enumerate(categorical_specs):
            lookup = {value: offset + j for j, value in enumerate(spec.vocabulary)}
            other = offset + len(spec.vocabulary)
            for r, d in enumerate(dicts):
                for value in _categories(d.get(spec.name), spec):
                    row_idx.append(r)
                    col_idx.append(lookup.get(value, other))
            width = len(spec.vocabulary) + 1
            field_of_column += [f] * width
            column_names += [f"{spec.name}={v}" for v in spec.vocabulary] + [f"{spec.name}={OTHER}"]
            offset += width
        # Duplicate (row, column) pairs (a list repeating a value) are summed, then clipped to 1.
        categorical = sparse.csr_matrix(
            (np.ones(len(row_idx), dtype=np.float32), (row_idx, col_idx)), shape=(len(dicts), offset)
        )
        categorical.data = np.minimum(categorical.data, 1.0)

        numeric = np.zeros((len(dicts), 2 * len(numeric_specs)), dtype=np.float32)
        for f, spec in enumerate(numeric_specs):
            for r, d in enumerate(dicts):
                value = _number(d.get(spec.name), spec, r)
                if math.isnan(value):
                    numeric[r, 2 * f + 1] = 1.0  # missing indicator; the value column stays 0 (= the mean)
                else:
                    numeric[r, 2 * f] = (value - spec.mean) / spec.std
        return AttributeFeatures(
            categorical=categorical,
            numeric=numeric,
            categorical_fields=tuple(s.name for s in categorical_specs),
            numeric_fields=tuple(s.name for s in numeric_specs),
            field_of_column=np.asarray(field_of_column, dtype=np.int64),
            numeric_field_of_column=np.repeat(np.arange(len(numeric_specs), dtype=np.int64), 2),
            categorical_columns=tuple(column_names),
            numeric_columns=tuple(c for s in numeric_specs for c in (s.name, f"{s.name}:missing")),
        )

    def fit_transform(
        self, attribute_dicts: Sequence[Mapping[str, Any]], rows: Sequence[int] | np.ndarray | None = None
    ) -> AttributeFeatures:
        """Fit on `rows`, then encode every dict."""
        return self.fit(attribute_dicts, rows).transform(attribute_dicts)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description of the fitted encoder (for checkpoints)."""
        if not hasattr(self, "fields_"):
            raise RuntimeError("AttributeEncoder is not fitted: call fit() first")
        return {
            "format": _FORMAT,
            "params": self.get_params(),
            "fields": [{**asdict(s), "vocabulary": list(s.vocabulary)} for s in self.fields_],
            "dropped": dict(self.dropped_),
            "n_fit_rows": self.n_fit_rows_,
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> AttributeEncoder:
        """The fitted encoder described by `to_dict()`."""
        if state.get("format") != _FORMAT:
            raise ValueError(
                f"unsupported AttributeEncoder format {state.get('format')!r}, expected {_FORMAT}"
            )
        encoder = cls(**state["params"])
        encoder._validate_params()
        encoder.fields_ = tuple(
            FieldSpec(**{**spec, "vocabulary": tuple(spec["vocabulary"])}) for spec in state["fields"]
        )
        encoder.dropped_ = dict(state["dropped"])
        encoder.n_fit_rows_ = int(state["n_fit_rows"])
        return encoder

    # ------------------------------------------------------------------ fitting one field
    def _validate_params(self) -> None:
        if self.min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {self.min_count}")
        if self.max_categories < 1:
            raise ValueError(f"max_categories must be >= 1, got {self.max_categories}")
        if not 0.0 <= self.min_coverage <= 1.0:
            raise ValueError(f"min_coverage must be in [0, 1], got {self.min_coverage}")
        if self.max_prefix_length < 0 or self.max_prefix_categories < 1:
            raise ValueError("max_prefix_length must be >= 0 and max_prefix_categories >= 1")
        for name, kind in (self.kinds or {}).items():
            if kind not in KINDS:
                raise ValueError(f"kinds[{name!r}] must be one of {', '.join(KINDS)}, got {kind!r}")

    def _fit_field(self, name: str, rows_present: list[tuple[int, Any]]) -> tuple[FieldSpec | None, str]:
        present = [v for _, v in rows_present]
        forced = (self.kinds or {}).get(name)
        if forced == "drop":
            return None, "dropped by configuration"
        if not present:
            return None, "no value in the fitted rows"
        kind = forced or _detect_kind(present)
        if kind is None:
            kinds = sorted({type(v).__name__ for v in present})
            return None, f"unsupported value types {kinds}"
        if kind in ("numeric", "date"):
            numbers = np.array(
                [_number(v, FieldSpec(name, kind), r) for r, v in rows_present], dtype=np.float64
            )
            numbers = numbers[~np.isnan(numbers)]
            if numbers.size == 0:
                return None, "no numeric value in the fitted rows"
            std = float(numbers.std())
            return FieldSpec(name, kind, mean=float(numbers.mean()), std=std if std > 0 else 1.0), ""
        values = [c for v in present for c in _categories(v, FieldSpec(name, "categorical"))]
        vocabulary, coverage = self._vocabulary(values)
        if kind == "categorical" and (forced or coverage >= self.min_coverage):
            return FieldSpec(name, "categorical", vocabulary), ""
        codes = all(isinstance(v, str) and _looks_like_code(v) for v in present)
        if kind == "prefix" or codes:
            for k in range(self.max_prefix_length, 0, -1):
                prefixes = [v[:k] for v in values]
                vocab_k, coverage_k = self._vocabulary(prefixes)
                if len(set(prefixes)) <= self.max_prefix_categories and (
                    forced or coverage_k >= self.min_coverage
                ):
                    if vocab_k:
                        return FieldSpec(name, "prefix", vocab_k, prefix_length=k), ""
            return None, "identifier-like codes with no prefix shared widely enough"
        return None, (
            f"identifier-like: values seen >= {self.min_count} times cover {coverage:.0%} of rows "
            f"(< {self.min_coverage:.0%}) and are not short codes"
        )

    def _vocabulary(self, values: list[str]) -> tuple[tuple[str, ...], float]:
        """(kept values, most frequent first; share of `values` they cover)."""
        counts = Counter(values)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = [v for v, c in ranked if c >= self.min_count][: self.max_categories]
        covered = sum(counts[v] for v in kept)
        return tuple(kept), covered / max(len(values), 1)


def _check_dicts(attribute_dicts: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    dicts = list(attribute_dicts)
    for i, d in enumerate(dicts):
        if not isinstance(d, Mapping):
            raise TypeError(f"attribute_dicts[{i}] is {type(d).__name__}, expected a dict")
    return dicts


def _row_indices(rows: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    index = np.asarray(rows)
    if index.dtype == bool:
        if index.shape != (n,):
            raise ValueError(f"a boolean rows mask must have length {n}, got shape {index.shape}")
        return np.flatnonzero(index)
    if index.size and not np.issubdtype(index.dtype, np.integer):
        raise TypeError(f"rows must be integer indices or a boolean mask, got dtype {index.dtype}")
    index = index.astype(np.int64).ravel()
    if index.size and (index.min() < 0 or index.max() >= n):
        raise IndexError(
            f"rows must index the {n} attribute dicts, got values in [{index.min()}, {index.max()}]"
        )
    return index


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, (str, list, tuple, set, frozenset)) and len(value) == 0:
        return True
    return isinstance(value, str) and not value.strip()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _detect_kind(present: list[Any]) -> str | None:
    if all(_is_number(v) for v in present):
        return "numeric"
    if all(isinstance(v, (str, date)) for v in present) and all(
        isinstance(v, date) or _ISO_DATE.match(v.strip()) for v in present
    ):
        return "date"
    scalars = (str, bool, int, float, np.integer, np.floating, np.bool_)
    if all(
        isinstance(v, scalars)
        or (isinstance(v, (list, tuple, set, frozenset)) and all(isinstance(x, scalars) for x in v))
        for v in present
    ):
        return "categorical"
    return None


def _looks_like_code(value: str) -> bool:
    text = value.strip()
    return len(text) <= _MAX_CODE_LENGTH and " " not in text and "://" not in text


def _category(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if _is_number(value) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _categories(value: Any, spec: FieldSpec) -> list[str]:
    """The category strings of one value (a list gives several); none when missing."""
    if _is_missing(value):
        return []
    items = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
    out = [_category(v) for v in items if not _is_missing(v)]
    if spec.kind == "prefix":
        out = [v[: spec.prefix_length] for v in out]
    return out


def _number(value: Any, spec: FieldSpec, row: int) -> float:
    """A float for a numeric or date field; NaN when missing; a clear error when unreadable."""
    if _is_missing(value):
        return math.nan
    if spec.kind == "date":
        try:
            moment = value if isinstance(value, date) else datetime.fromisoformat(str(value).strip())
        except ValueError as exc:
            raise ValueError(f"row {row}, field {spec.name!r}: expected an ISO date, got {value!r}") from exc
        start = date(moment.year, 1, 1)
        days = (date(moment.year, moment.month, moment.day) - start).days
        return moment.year + days / 366.0  # fractional year keeps order and scale
    if _is_number(value) or isinstance(value, (bool, np.bool_)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError as exc:
        raise ValueError(f"row {row}, field {spec.name!r}: expected a number, got {value!r}") from exc
