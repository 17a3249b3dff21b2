"""Content similarity as an EmbeddingModel: the fallback that needs no training.

Item vector = the unit-normalised pretrained text vector of the item's document. User vector =
the strength-weighted mean of their history's item vectors, plus their own text vector (a bio)
when they have one, normalised. Score = dot product, like every EmbeddingModel.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from thaw.data.dataset import ItemContent, UserContent


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero): (n, d) float32."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


class ContentSimilarity:
    """Text-vector similarity between a user's history (or bio) and every item."""

    name = "content"

    def __init__(self, text_weight: float = 1.0) -> None:
        self.text_weight = text_weight

    def encode_items(self, content: ItemContent, item_ids: list[str]) -> np.ndarray:
        """(n, d) unit item vectors from `content.text_vectors`."""
        if content.text_vectors is None:
            raise ValueError("ContentSimilarity needs items' text_vectors")
        if len(content.text_vectors) != len(item_ids):
            raise ValueError(f"{len(item_ids)} item ids but {len(content.text_vectors)} text vectors")
        return normalise(content.text_vectors)

    def encode_users(
        self,
        content: UserContent,
        user_ids: list[str],
        history: sp.csr_matrix,
        item_vectors: np.ndarray,
    ) -> np.ndarray:
        """(n, d) unit user vectors; a user with neither history nor text gets a zero vector."""
        history = sp.csr_matrix(history, dtype=np.float32)
        if history.shape != (len(user_ids), len(item_vectors)):
            raise ValueError(
                f"history must be ({len(user_ids)}, {len(item_vectors)}), got {history.shape}"
            )
        totals = np.asarray(history.sum(axis=1)).ravel()  # (n,)
        pooled = np.asarray(history @ item_vectors, np.float32)  # (n, d)
        pooled = np.divide(pooled, totals[:, None], out=np.zeros_like(pooled), where=totals[:, None] > 0)
        if content.text_vectors is not None:
            pooled = normalise(pooled) + self.text_weight * normalise(content.text_vectors)
        return normalise(pooled)
