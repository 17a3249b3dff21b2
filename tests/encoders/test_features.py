"""AttributeEncoder: kinds detected, no leakage from rows outside the fit, serialisable."""

from __future__ import annotations

import json

import numpy as np
import pytest

from thaw.encoders import AttributeEncoder
from thaw.encoders.features import OTHER

USERS = [
    {"age": 20, "occupation": "student", "zip": "94043", "genres": ["drama", "comedy"]},
    {"age": 30, "occupation": "student", "zip": "94041", "genres": ["drama"]},
    {"age": 40, "occupation": "writer", "zip": "10001", "genres": ["comedy"]},
    {"age": None, "occupation": "writer", "zip": "10012", "genres": []},
    # rows 4 and 5 are held out: their occupation, zip prefix and age must not be learned
    {"age": 90, "occupation": "astronaut", "zip": "30301", "genres": ["horror"]},
    {"age": 95, "occupation": "astronaut", "zip": "30302", "genres": ["horror", "drama"]},
]
FIT_ROWS = [0, 1, 2, 3]


def fitted(**params: object) -> AttributeEncoder:
    return AttributeEncoder(**params).fit(USERS, rows=FIT_ROWS)


def column(features, name: str) -> np.ndarray:
    return features.categorical[:, features.categorical_columns.index(name)].toarray().ravel()


def test_kinds_are_detected() -> None:
    encoder = fitted()
    kinds = {spec.name: spec.kind for spec in encoder.fields_}
    assert kinds == {"age": "numeric", "occupation": "categorical", "zip": "prefix", "genres": "categorical"}
    zip_spec = next(s for s in encoder.fields_ if s.name == "zip")
    assert zip_spec.prefix_length == 3 and set(zip_spec.vocabulary) == {"940", "100"}


def test_category_seen_only_outside_fit_rows_maps_to_other_bucket() -> None:
    encoder = fitted()
    assert all("astronaut" not in s.vocabulary and "horror" not in s.vocabulary for s in encoder.fields_)
    features = encoder.transform(USERS)
    np.testing.assert_array_equal(column(features, f"occupation={OTHER}"), [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(column(features, f"zip={OTHER}"), [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(column(features, f"genres={OTHER}"), [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(column(features, "genres=drama"), [1, 1, 0, 0, 0, 1])


def test_numeric_statistics_ignore_rows_outside_the_fit() -> None:
    spec = next(s for s in fitted().fields_ if s.name == "age")
    assert spec.mean == pytest.approx(30.0) and spec.std == pytest.approx(np.std([20, 30, 40]))
    features = fitted().transform(USERS)
    value, missing = features.numeric[:, 0], features.numeric[:, 1]
    np.testing.assert_allclose(value[:4], [(20 - 30) / spec.std, 0, (40 - 30) / spec.std, 0], atol=1e-6)
    np.testing.assert_array_equal(missing, [0, 0, 0, 1, 0, 0])
    assert features.numeric.dtype == np.float32


def test_fit_on_all_rows_learns_the_held_out_values() -> None:
    encoder = AttributeEncoder().fit(USERS)
    occupation = next(s for s in encoder.fields_ if s.name == "occupation")
    assert "astronaut" in occupation.vocabulary


def test_boolean_mask_equals_indices() -> None:
    mask = np.array([True] * 4 + [False] * 2)
    assert AttributeEncoder().fit(USERS, rows=mask).to_dict() == fitted().to_dict()


def test_rare_values_go_to_other_and_missing_sets_nothing() -> None:
    rows = [{"c": "a"}, {"c": "a"}, {"c": "b"}, {}, {"c": None}]
    features = AttributeEncoder(min_count=2).fit_transform(rows)
    assert features.categorical_columns == ("c=a", f"c={OTHER}")
    np.testing.assert_array_equal(features.categorical.toarray(), [[1, 0], [1, 0], [0, 1], [0, 0], [0, 0]])


def test_metadata_and_take() -> None:
    features = fitted().transform(USERS)
    assert features.categorical.shape[1] == len(features.field_of_column) == len(features.categorical_columns)
    for col, name in enumerate(features.categorical_columns):
        assert name.startswith(features.categorical_fields[features.field_of_column[col]] + "=")
    assert features.numeric_columns == ("age", "age:missing")
    np.testing.assert_array_equal(features.numeric_field_of_column, [0, 0])
    sub = features.take([5, 0])
    assert len(sub) == 2
    np.testing.assert_array_equal(sub.categorical.toarray(), features.categorical.toarray()[[5, 0]])


def test_urls_and_free_ids_are_dropped_dates_are_numeric() -> None:
    rows = [
        {
            "url": f"http://example.org/item/{i}",
            "uuid": f"{i:08x}-aaaa-bbbb-cccc-{i:012x}",
            "released": f"19{50 + i}-01-01",
        }
        for i in range(20)
    ]
    encoder = AttributeEncoder().fit(rows)
    assert set(encoder.dropped_) == {"url", "uuid"}
    (spec,) = encoder.fields_
    assert spec.kind == "date" and spec.mean == pytest.approx(1959.5)


def test_forced_kinds_and_bad_values() -> None:
    rows = [{"code": 1}, {"code": 2}, {"code": 1}]
    encoder = AttributeEncoder(kinds={"code": "categorical"}).fit(rows)
    assert encoder.fields_[0].kind == "categorical" and encoder.fields_[0].vocabulary == ("1",)
    numeric = AttributeEncoder().fit([{"age": 3}, {"age": 5}])
    with pytest.raises(ValueError, match=r"row 1, field 'age': expected a number"):
        numeric.transform([{"age": 4}, {"age": "old"}])
    with pytest.raises(ValueError, match="kinds"):
        AttributeEncoder(kinds={"x": "fancy"}).fit(rows)
    with pytest.raises(TypeError, match=r"attribute_dicts\[1\]"):
        AttributeEncoder().fit([{}, "not a dict"])  # type: ignore[list-item]
    with pytest.raises(IndexError):
        AttributeEncoder().fit(rows, rows=[0, 7])
    with pytest.raises(RuntimeError, match="not fitted"):
        AttributeEncoder().transform(rows)


def test_round_trip_through_json() -> None:
    encoder = fitted()
    restored = AttributeEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    a, b = encoder.transform(USERS), restored.transform(USERS)
    np.testing.assert_array_equal(a.categorical.toarray(), b.categorical.toarray())
    np.testing.assert_array_equal(a.numeric, b.numeric)
    assert a.categorical_columns == b.categorical_columns and restored.dropped_ == encoder.dropped_


def test_fitting_twice_equals_fitting_once() -> None:
    encoder = AttributeEncoder()
    encoder.fit(USERS)
    encoder.fit(USERS, rows=FIT_ROWS)
    assert encoder.to_dict() == fitted().to_dict()
