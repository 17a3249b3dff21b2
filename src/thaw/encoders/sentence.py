"""Pretrained sentence-transformers encoders (default all-MiniLM-L6-v2), in fp32 or bfloat16."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thaw.encoders.base import (
    ModelNotFoundError,
    ProgressCallback,
    batches_by_length,
    check_texts,
    embedding_dim,
    l2_normalize,
    model_base_name,
    quiet_transformers,
    resolve_model_folder,
    sentence_modules,
    set_offline,
    torch_threads,
)

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16")


class SentenceEncoder:
    """A sentence-transformers model folder as a `TextEncoder`; weights load on the first encode.

    `precision="bf16"` loads the weights in bfloat16 (oneDNN uses AVX512-BF16 or AMX when the
    CPU has them) and returns float32 vectors. `threads` is the torch intra-op thread count used
    while encoding; the process-wide setting is restored afterwards. Nothing is ever downloaded:
    the hub is switched off before sentence-transformers is imported.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        precision: str = "fp32",
        threads: int = 1,
        batch_size: int = 64,
        name: str | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_path, is_default = resolve_model_folder(model_path)
        self.precision = precision
        self.threads = threads
        self.batch_size = batch_size
        base = name or model_base_name(self.model_path, is_default)
        self.name = base if precision == "fp32" else f"{base}@{precision}"
        modules = sentence_modules(self.model_path)
        self._normalizes = any(str(m.get("type", "")).endswith("Normalize") for m in modules)
        self._dim = embedding_dim(self.model_path)
        self._model: Any = None
        self._lock = threading.Lock()  # serving threads may race to the first encode

    def __repr__(self) -> str:
        return (
            f"SentenceEncoder({str(self.model_path)!r}, precision={self.precision!r}, threads={self.threads})"
        )

    @property
    def dim(self) -> int:
        """Output width, read from the folder's configs (loading the weights only if they don't say)."""
        if self._dim is None:
            self._dim = int(self.model.get_sentence_embedding_dimension())
        return self._dim

    @property
    def model(self) -> Any:
        """The loaded SentenceTransformer (loaded now if it wasn't)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def encode(self, texts: Sequence[str], *, callback: ProgressCallback | None = None) -> np.ndarray:
        """Float32 vectors (len(texts), dim), batched longest-first."""
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self.model
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        done = 0
        with torch_threads(self.threads):
            for index in batches_by_length(texts, self.batch_size):
                vectors = model.encode(
                    [texts[i] for i in index],
                    batch_size=self.batch_size,
                    convert_to_numpy=False,
                    convert_to_tensor=True,
                    show_progress_bar=False,
                )
                out[index] = vectors.float().numpy()  # bf16 has no numpy dtype: cast first
                done += len(index)
                if callback is not None:
                    callback(done, len(texts))
        if self.precision != "fp32" and self._normalizes:
            out = l2_normalize(out)  # rounding in bf16 leaves norms slightly off 1
        return out

    def _load(self) -> Any:
        set_offline()
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - both are core dependencies
            raise ModelNotFoundError(
                "the sentence encoder needs sentence-transformers: pip install 'sentence-transformers>=3,<7'"
            ) from exc
        kwargs: dict[str, Any] = {}
        if self.precision == "bf16":
            kwargs["model_kwargs"] = {"dtype": torch.bfloat16}
        log.info("loading %s from %s", self.name, self.model_path)
        with torch_threads(self.threads), quiet_transformers():
            try:
                model = SentenceTransformer(
                    str(self.model_path), device="cpu", local_files_only=True, **kwargs
                )
            except OSError as exc:
                raise ModelNotFoundError(
                    f"cannot load a sentence-transformers model from {self.model_path}: {exc}"
                ) from exc
        model.eval()
        return model


def default_model_folder() -> Path:
    """Where the default all-MiniLM-L6-v2 weights live (ModelNotFoundError says what to install)."""
    return resolve_model_folder(None)[0]
