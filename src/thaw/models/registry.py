"""Model names on the command line -> factories `factory(seed=..., **options) -> Recommender`.

Entries are import paths resolved on first use, so naming a model never imports the others
(torch stays unloaded for `popularity`). Add a model with one line in `MODELS`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from thaw.models.base import Recommender

MODELS: dict[str, str] = {
    "random": "thaw.models.random_baseline:RandomRecommender",
    "popularity": "thaw.models.popularity:PopularityRecommender",
    "content-knn": "thaw.models.content_knn:ContentKNN",
    "content-knn-tfidf": "thaw.models.content_knn:ContentKNNTfidf",
    "als": "thaw.models.als:ALSRecommender",
    "seed": "thaw.models.seed_mlp:SeedMLPRecommender",
    "thaw": "thaw.models.thaw_model:create",
}
"""Every registered model (name -> "module:factory")."""

BASELINES: tuple[str, ...] = ("random", "popularity", "content-knn", "content-knn-tfidf", "als", "seed")
"""The reference models every thaw result is compared with."""


def available() -> list[str]:
    """The registered model names."""
    return list(MODELS)


def factory(name: str) -> Any:
    """The factory registered as `name`; raises ValueError naming the known models."""
    try:
        path = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None
    module, attr = path.split(":")
    return getattr(import_module(module), attr)


def create(name: str, *, seed: int = 0, rerank: Any = None, **options: Any) -> Recommender:
    """A fresh, unfitted model `name` with `seed` and model-specific `options`.

    `rerank` ("cold-boost=1", "cold-share=0.2", a `RerankSpec`) wraps it in an ExposureReranker.
    """
    model = factory(name)(seed=seed, **options)
    if rerank is not None:
        from thaw.models.rerank import ExposureReranker, as_spec

        spec = as_spec(rerank)
        model = model if spec is None else ExposureReranker.from_spec(model, spec, seed=seed)
    return model
