"""A deterministic stand-in text encoder: hashed words and character trigrams, randomly projected."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from thaw.encoders.base import ProgressCallback, check_texts, l2_normalize

_WORD = re.compile(r"\w+", re.UNICODE)
_WORD_WEIGHT = 1.0
_MEMO_LIMIT = 200_000
_TRIGRAM_WEIGHT = 0.5  # trigrams make "network" and "networks" close without drowning whole words


class HashEncoder:
    """Texts sharing words (or word pieces) get closer vectors than unrelated ones; no weights needed.

    Each lower-cased word and each character trigram of a word (with boundary marks) is hashed
    with BLAKE2b (salted by `seed`) into a fixed ±1 vector of length `dim`; a text is the weighted
    sum of its features' vectors, L2-normalised. This is a signed random projection of the hashed
    bag of features, so cosine similarity tracks feature overlap. Empty texts get the vector of
    a reserved feature, so every output row has unit length.
    """

    def __init__(self, dim: int = 16, seed: int = 0, *, batch_size: int = 256) -> None:
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        if not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dim = dim
        self.seed = seed
        self.batch_size = batch_size
        self.name = f"hash-{dim}" if seed == 0 else f"hash-{dim}-seed{seed}"
        self._vectors: dict[str, np.ndarray] = {}  # feature -> (dim,) ±1, memoised

    def __repr__(self) -> str:
        return f"HashEncoder(dim={self.dim}, seed={self.seed})"

    def encode(self, texts: Sequence[str], *, callback: ProgressCallback | None = None) -> np.ndarray:
        """Unit-length float32 vectors (len(texts), dim)."""
        texts = check_texts(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            stop = min(start + self.batch_size, len(texts))
            for row in range(start, stop):
                out[row] = self._embed(texts[row])
            if callback is not None:
                callback(stop, len(texts))
        return l2_normalize(out)

    def _embed(self, text: str) -> np.ndarray:
        total = np.zeros(self.dim, dtype=np.float32)
        words = _WORD.findall(text.lower())
        if not words:
            return self._feature_vector("\x00empty")
        for word in words:
            total += _WORD_WEIGHT * self._feature_vector("w:" + word)
            marked = f"<{word}>"
            for i in range(len(marked) - 2):
                total += _TRIGRAM_WEIGHT * self._feature_vector("c:" + marked[i : i + 3])
        return total

    def _feature_vector(self, feature: str) -> np.ndarray:
        vector = self._vectors.get(feature)
        if vector is None:
            n_bytes = (self.dim + 7) // 8
            blocks = []
            counter = 0
            while sum(len(b) for b in blocks) < n_bytes:
                # BLAKE2b gives at most 64 bytes (512 signs) per call; a counter extends it.
                digest = hashlib.blake2b(
                    feature.encode("utf-8"),
                    digest_size=min(64, n_bytes),
                    salt=self.seed.to_bytes(8, "little") + counter.to_bytes(8, "little"),
                )
                blocks.append(digest.digest())
                counter += 1
            bits = np.unpackbits(np.frombuffer(b"".join(blocks), dtype=np.uint8))[: self.dim]
            vector = bits.astype(np.float32) * 2.0 - 1.0  # (dim,) in {-1, +1}
            if len(self._vectors) >= _MEMO_LIMIT:
                self._vectors.clear()  # bounded memory on huge vocabularies; values are recomputable
            self._vectors[feature] = vector
        return vector
