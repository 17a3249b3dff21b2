"""encode_cached: only misses are encoded, identical texts once, cached vectors equal fresh ones."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from thaw.data.store import Store, text_hash
from thaw.encoders import HashEncoder, encode_cached
from thaw.encoders.base import ProgressCallback


class CountingEncoder:
    """A HashEncoder that records which texts it was asked to encode."""

    def __init__(self, dim: int = 16) -> None:
        self.inner = HashEncoder(dim=dim)
        self.name = self.inner.name
        self.dim = dim
        self.seen: list[str] = []

    def encode(self, texts: Sequence[str], *, callback: ProgressCallback | None = None) -> np.ndarray:
        self.seen.extend(texts)
        return self.inner.encode(texts, callback=callback)


def test_first_call_encodes_distinct_texts_once_and_writes_them(store: Store) -> None:
    encoder = CountingEncoder()
    texts = ["a paper", "another paper", "a paper", "third"]
    vectors = encode_cached(encoder, texts, store)
    assert sorted(encoder.seen) == ["a paper", "another paper", "third"]
    np.testing.assert_array_equal(vectors, HashEncoder(dim=16).encode(texts))
    cached = store.get_embeddings(encoder.name, [text_hash(t) for t in texts])
    assert set(cached) == {text_hash(t) for t in texts}
    assert all(dim == 16 for dim, _ in cached.values())


def test_second_call_encodes_only_misses_and_cached_equal_fresh(store: Store) -> None:
    encoder = CountingEncoder()
    first = encode_cached(encoder, ["x one", "x two"], store)
    encoder.seen.clear()
    second = encode_cached(encoder, ["x two", "new text", "x one"], store)
    assert encoder.seen == ["new text"]
    np.testing.assert_array_equal(second[[2, 0]], first)
    np.testing.assert_array_equal(second, HashEncoder(dim=16).encode(["x two", "new text", "x one"]))
    encoder.seen.clear()
    encode_cached(encoder, ["x one", "new text"], store)
    assert encoder.seen == []


def test_cache_is_keyed_by_encoder_name(store: Store) -> None:
    encode_cached(HashEncoder(dim=16), ["shared text"], store)
    other = CountingEncoder(dim=8)
    vectors = encode_cached(other, ["shared text"], store)
    assert other.seen == ["shared text"] and vectors.shape == (1, 8)


def test_callback_counts_distinct_texts_including_hits(store: Store) -> None:
    encode_cached(HashEncoder(), ["a", "b"], store)
    calls: list[tuple[int, int]] = []
    encode_cached(HashEncoder(), ["a", "b", "c", "d", "c"], store, callback=lambda d, t: calls.append((d, t)))
    assert calls[0] == (2, 4) and calls[-1] == (4, 4)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_empty_and_dimension_clash(store: Store) -> None:
    assert encode_cached(HashEncoder(), [], store).shape == (0, 16)
    store.put_embeddings("hash-16", {text_hash("t"): (8, np.zeros(8, np.float32).tobytes())})
    with pytest.raises(ValueError, match="share a name"):
        encode_cached(HashEncoder(), ["t"], store)
