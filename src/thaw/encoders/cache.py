"""Encode each distinct text once: vectors cached in the store under (encoder name, text hash)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from thaw.data.store import text_hash
from thaw.encoders.base import ProgressCallback, TextEncoder, check_texts

log = logging.getLogger(__name__)

WRITE_EVERY = 2048  # misses encoded between writes, so an interrupted run keeps its progress


class EmbeddingStore(Protocol):
    """The part of `thaw.data.store.Store` the cache uses."""

    def get_embeddings(self, encoder: str, hashes: Sequence[str]) -> dict[str, tuple[int, bytes]]: ...

    def put_embeddings(self, encoder: str, vectors: dict[str, tuple[int, bytes]]) -> int: ...


def encode_cached(
    encoder: TextEncoder,
    texts: Sequence[str],
    store: EmbeddingStore,
    *,
    callback: ProgressCallback | None = None,
) -> np.ndarray:
    """Vectors of `texts` (float32, (len(texts), dim)), encoding only the distinct texts not cached.

    `callback(done, total)` counts distinct texts: it is first called with the number already
    cached, then as the missing ones are encoded and written back.
    """
    texts = check_texts(texts)
    dim = encoder.dim
    hashes = [text_hash(t) for t in texts]
    first_text: dict[str, str] = {}
    for h, t in zip(hashes, texts, strict=True):
        first_text.setdefault(h, t)  # identical texts are encoded once
    unique = list(first_text)

    vectors: dict[str, np.ndarray] = {}
    for h, (stored_dim, blob) in store.get_embeddings(encoder.name, unique).items():
        if stored_dim != dim or len(blob) != 4 * dim:
            raise ValueError(
                f"cached vector for encoder {encoder.name!r} has dim {stored_dim} ({len(blob)} bytes), "
                f"but the encoder has dim {dim}: two encoders share a name"
            )
        vectors[h] = np.frombuffer(blob, dtype=np.float32)
    missing = [h for h in unique if h not in vectors]
    hits = len(unique) - len(missing)
    log.debug("%s: %d distinct texts, %d cached, %d to encode", encoder.name, len(unique), hits, len(missing))
    if callback is not None:
        callback(hits, len(unique))

    for start in range(0, len(missing), WRITE_EVERY):
        chunk = missing[start : start + WRITE_EVERY]

        def progress(done: int, _total: int, offset: int = hits + start) -> None:
            if callback is not None:
                callback(offset + done, len(unique))

        encoded = np.ascontiguousarray(
            encoder.encode([first_text[h] for h in chunk], callback=progress), dtype=np.float32
        )
        if encoded.shape != (len(chunk), dim):
            raise ValueError(
                f"encoder {encoder.name!r} returned shape {encoded.shape}, expected {(len(chunk), dim)}"
            )
        store.put_embeddings(
            encoder.name, {h: (dim, row.tobytes()) for h, row in zip(chunk, encoded, strict=True)}
        )
        vectors.update(zip(chunk, encoded, strict=True))

    out = np.empty((len(texts), dim), dtype=np.float32)
    for row, h in enumerate(hashes):
        out[row] = vectors[h]
    return out
