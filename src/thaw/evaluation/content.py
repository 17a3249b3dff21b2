"""Fill a snapshot's pretrained text vectors with a configured encoder (cached in the store)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from thaw.data.dataset import Snapshot

NO_ENCODER = ("none", "tfidf")
"""Encoder settings that leave text vectors empty (content models fall back to TF-IDF)."""


def with_text_vectors(
    snapshot: Snapshot,
    encoder: Any,
    *,
    store: Any | None = None,
    callback: Any | None = None,
) -> Snapshot:
    """`snapshot` with `items.text_vectors` (and `users.text_vectors` when users have text).

    `encoder` is a TextEncoder; with a `store`, vectors come from and go to its embedding cache.
    Users without text get a zero vector (content models treat zero as "no text").
    """
    def encode(texts: list[str]) -> np.ndarray:
        if store is not None:
            from thaw.encoders.cache import encode_cached

            return encode_cached(encoder, texts, store, callback=callback)
        return np.asarray(encoder.encode(texts, callback=callback), np.float32)

    items = replace(snapshot.items, text_vectors=encode(snapshot.items.documents()))
    users = snapshot.users
    has_text = [i for i, t in enumerate(users.texts) if t and t.strip()]
    if has_text:
        vectors = np.zeros((len(users), encoder.dim), np.float32)
        vectors[has_text] = encode([users.texts[i] for i in has_text])
        users = replace(users, text_vectors=vectors)
    return replace(snapshot, items=items, users=users)


def encode_snapshot(
    snapshot: Snapshot,
    spec: str,
    *,
    store: Any | None = None,
    threads: int = 1,
    callback: Any | None = None,
) -> Snapshot:
    """`with_text_vectors` for an encoder spec (`minilm`, `hash`, ...); `none`/`tfidf` change nothing."""
    if spec in NO_ENCODER:
        return snapshot
    from thaw.encoders import load_encoder

    return with_text_vectors(snapshot, load_encoder(spec, threads=threads), store=store, callback=callback)
