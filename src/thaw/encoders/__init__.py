"""Text and attribute encoders: pretrained sentence encoders, a test stand-in, the embedding cache.

Heavy libraries (torch, sentence-transformers, onnxruntime) are imported only when an encoder
first needs them, so `import thaw.encoders` stays cheap.
"""

from __future__ import annotations

import re
from pathlib import Path

from thaw.encoders.base import DEFAULT_MODEL_NAME, ModelNotFoundError, ProgressCallback, TextEncoder
from thaw.encoders.cache import encode_cached
from thaw.encoders.features import AttributeEncoder, AttributeFeatures
from thaw.encoders.hashing import HashEncoder

ENCODER_SPECS: tuple[str, ...] = (
    "minilm",
    "minilm-bf16",
    "minilm-onnx-int8",
    "hash",
    "hash-<dim>",
    "<path to a sentence-transformers folder>",
)

_HASH_SPEC = re.compile(r"hash-(\d+)(?:-seed(\d+))?")
# Encoder names (as stored in checkpoints and the cache) are accepted as specs too.
_NAME_ALIASES = {
    DEFAULT_MODEL_NAME: "minilm",
    f"{DEFAULT_MODEL_NAME}@bf16": "minilm-bf16",
    f"{DEFAULT_MODEL_NAME}@onnx-int8": "minilm-onnx-int8",
}


def load_encoder(spec: str = "minilm", *, threads: int = 1) -> TextEncoder:
    """The text encoder named by `spec` (see ENCODER_SPECS) or by its `name`; weights load on first encode."""
    from thaw.encoders.onnx_int8 import OnnxInt8Encoder
    from thaw.encoders.sentence import SentenceEncoder

    key = spec.strip()
    key = _NAME_ALIASES.get(key, key)
    if key == "minilm":
        return SentenceEncoder(threads=threads)
    if key == "minilm-bf16":
        return SentenceEncoder(precision="bf16", threads=threads)
    if key == "minilm-onnx-int8":
        return OnnxInt8Encoder(threads=threads)
    if key == "hash":
        return HashEncoder(dim=16)
    match = _HASH_SPEC.fullmatch(key)
    if match:
        return HashEncoder(dim=int(match.group(1)), seed=int(match.group(2) or 0))
    looks_like_path = "/" in key or "\\" in key or key.startswith((".", "~"))
    if looks_like_path or (key and Path(key).expanduser().is_dir()):
        # A path that does not exist gets ModelNotFoundError naming it.
        return SentenceEncoder(key, threads=threads)
    raise ValueError(f"unknown encoder {spec!r}; valid: {', '.join(ENCODER_SPECS)}")


__all__ = [
    "ENCODER_SPECS",
    "AttributeEncoder",
    "AttributeFeatures",
    "HashEncoder",
    "ModelNotFoundError",
    "ProgressCallback",
    "TextEncoder",
    "encode_cached",
    "load_encoder",
]
