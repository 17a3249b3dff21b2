"""Content features for baselines: TF-IDF over item documents and multi-hot attributes.

Both are fitted on the rows the caller marks (warm entities), then applied to every row, so no
vocabulary, IDF or category is learned from a held-out entity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize


def l2_rows(matrix: sp.spmatrix | np.ndarray) -> sp.csr_matrix | np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero)."""
    if matrix.shape[1] == 0:  # no features at all: nothing to scale
        return sp.csr_matrix(matrix, dtype=np.float32) if sp.issparse(matrix) else np.asarray(matrix, np.float32)
    if sp.issparse(matrix):
        return normalize(sp.csr_matrix(matrix, dtype=np.float32), norm="l2", axis=1)
    dense = np.asarray(matrix, np.float32)
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    return dense / np.where(norms > 0, norms, 1.0)


def tfidf_matrix(
    documents: Sequence[str], fit_rows: np.ndarray, *, max_features: int = 50_000
) -> sp.csr_matrix:
    """(n_docs, vocabulary) L2-normalised TF-IDF; vocabulary and IDF from `fit_rows` only."""
    vectorizer = TfidfVectorizer(
        sublinear_tf=True, stop_words="english", max_features=max_features, dtype=np.float32
    )
    fit_docs = [documents[i] for i in np.flatnonzero(fit_rows)]
    if not any(doc.strip() for doc in fit_docs):
        return sp.csr_matrix((len(documents), 0), dtype=np.float32)
    try:
        vectorizer.fit(fit_docs)
    except ValueError:  # only stop words: no vocabulary
        return sp.csr_matrix((len(documents), 0), dtype=np.float32)
    return l2_rows(vectorizer.transform(documents))


def attribute_matrix(attributes: Sequence[dict[str, Any]], fit_rows: np.ndarray) -> sp.csr_matrix:
    """(n, n_categories) L2-normalised multi-hot attributes, categories fitted on `fit_rows` only.

    Uses thaw's AttributeEncoder (strings, bools and lists as categories, zip-like codes by
    prefix, identifiers dropped). Numbers and dates are left out: a standardised number is a
    direction, not a similarity, under the cosine.
    """
    from thaw.encoders.features import AttributeEncoder

    encoder = AttributeEncoder().fit(attributes, rows=np.flatnonzero(fit_rows))
    categorical = encoder.transform(attributes).categorical
    return l2_rows(categorical)
