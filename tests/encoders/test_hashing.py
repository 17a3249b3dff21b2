"""HashEncoder: the TextEncoder contract, determinism and a sense of similarity."""

from __future__ import annotations

import numpy as np
import pytest

from thaw.encoders import HashEncoder, TextEncoder


def test_satisfies_protocol_shape_dtype_and_unit_norm() -> None:
    encoder = HashEncoder(dim=16)
    assert isinstance(encoder, TextEncoder)
    assert encoder.name == "hash-16" and encoder.dim == 16
    vectors = encoder.encode(["graph networks", "", "Ünïcode text, with punctuation!"])
    assert vectors.shape == (3, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_empty_input_gives_zero_rows() -> None:
    vectors = HashEncoder(dim=8).encode([])
    assert vectors.shape == (0, 8) and vectors.dtype == np.float32


def test_deterministic_across_instances_and_batches() -> None:
    texts = [f"title number {i} about topic {i % 7}" for i in range(40)]
    one = HashEncoder(dim=32, seed=3, batch_size=5).encode(texts)
    two = HashEncoder(dim=32, seed=3, batch_size=64).encode(texts[::-1])[::-1]
    np.testing.assert_array_equal(one, two)
    other_seed = HashEncoder(dim=32, seed=4).encode(texts)
    assert not np.allclose(one, other_seed)
    assert HashEncoder(dim=32, seed=4).name != HashEncoder(dim=32, seed=3).name


def test_shared_words_are_closer_than_unrelated_texts() -> None:
    encoder = HashEncoder(dim=64)
    anchor, related, unrelated = encoder.encode(
        ["protein folding simulation", "simulation of protein folding pathways", "stock market crash of 1929"]
    )
    assert anchor @ related > anchor @ unrelated + 0.3


def test_dims_beyond_one_digest_are_filled() -> None:
    # One word = one word feature (weight 1) + one trigram (weight 0.5): no coordinate can cancel.
    vectors = HashEncoder(dim=1000).encode(["a"])
    assert vectors.shape == (1, 1000)
    assert np.count_nonzero(vectors) == 1000  # signs drawn for every coordinate, not only the first 512
    assert len(np.unique(np.abs(vectors))) == 2  # |1 ± 0.5| after normalisation


def test_callback_reports_progress_to_total() -> None:
    calls: list[tuple[int, int]] = []
    HashEncoder(dim=8, batch_size=4).encode(
        [str(i) for i in range(10)], callback=lambda d, t: calls.append((d, t))
    )
    assert calls == [(4, 10), (8, 10), (10, 10)]


@pytest.mark.parametrize("kwargs", [{"dim": 0}, {"dim": -3}, {"seed": -1}, {"batch_size": 0}])
def test_bad_parameters_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        HashEncoder(**kwargs)


def test_non_string_text_is_named() -> None:
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType"):
        HashEncoder().encode(["fine", None])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="not one string"):
        HashEncoder().encode("a string, not a list")
