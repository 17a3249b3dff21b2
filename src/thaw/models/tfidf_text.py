"""A TF-IDF text encoder for the item tower: sparse TF-IDF reduced to dense vectors by a truncated SVD.

The stand-in for a pretrained encoder in the ablation ("text encoder replaced by TF-IDF").
Vocabulary, IDF and the SVD are fitted on training (warm) items only; cold items are transformed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

NAME = "tfidf"


def _vectorizer(vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
    return TfidfVectorizer(
        sublinear_tf=True, stop_words="english", min_df=1 if vocabulary else 2,
        max_features=50_000, dtype=np.float32, vocabulary=vocabulary,
    )


class TfidfTextEncoder:
    """TF-IDF (fitted on given rows) -> `dim`-d LSA vectors, L2-normalised."""

    name = NAME

    def __init__(self, dim: int = 256, seed: int = 0) -> None:
        self.dim = dim
        self.seed = seed

    def fit(self, documents: Sequence[str], rows: np.ndarray) -> TfidfTextEncoder:
        """Learn vocabulary, IDF and the projection from `documents[rows]`."""
        fit_docs = [documents[i] for i in np.asarray(rows, dtype=np.int64)]
        vectorizer = _vectorizer()
        try:
            tfidf = vectorizer.fit_transform(fit_docs)
        except ValueError as exc:  # empty vocabulary: no usable words in the training texts
            raise ValueError(f"TF-IDF text features need words in the training items: {exc}") from exc
        n_components = max(1, min(self.dim, tfidf.shape[1] - 1, tfidf.shape[0] - 1))
        svd = TruncatedSVD(n_components=n_components, random_state=self.seed).fit(tfidf)
        self.vocabulary_ = {str(word): int(col) for word, col in vectorizer.vocabulary_.items()}
        self.idf_ = vectorizer.idf_.astype(np.float32)
        self.components_ = svd.components_.astype(np.float32)  # (dim, vocabulary)
        self.dim = n_components
        return self

    def encode(self, texts: Sequence[str], *, callback: Any = None) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors (zero for texts without known words)."""
        vectorizer = _vectorizer(self.vocabulary_)
        vectorizer.idf_ = self.idf_
        dense = np.asarray(vectorizer.transform(list(texts)) @ self.components_.T, dtype=np.float32)
        norms = np.linalg.norm(dense, axis=1, keepdims=True)
        if callback is not None:
            callback(len(texts), len(texts))
        return dense / np.maximum(norms, 1e-12)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able settings, arrays) for a checkpoint."""
        words = sorted(self.vocabulary_, key=self.vocabulary_.__getitem__)
        return {"dim": self.dim, "seed": self.seed, "words": words}, {
            "idf": self.idf_, "components": self.components_,
        }

    @classmethod
    def from_state(cls, settings: dict[str, Any], arrays: dict[str, np.ndarray]) -> TfidfTextEncoder:
        """The inverse of `state`."""
        encoder = cls(dim=int(settings["dim"]), seed=int(settings["seed"]))
        encoder.vocabulary_ = {word: i for i, word in enumerate(settings["words"])}
        encoder.idf_ = np.asarray(arrays["idf"], np.float32)
        encoder.components_ = np.asarray(arrays["components"], np.float32)
        return encoder
