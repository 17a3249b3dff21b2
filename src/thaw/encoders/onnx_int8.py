"""A sentence-transformers model exported once to ONNX, quantised to int8 per channel, run by ONNX Runtime.

The export is the transformer plus its pooling and normalisation in one graph, so ONNX Runtime
returns the finished sentence vector. Weights of every MatMul are quantised to signed int8 with
one scale per output channel (dynamic quantisation: activations are quantised on the fly);
per-tensor scales lose far more (see docs/benchmarks/encoders.md). The exported file lives in a
cache folder outside the repository, keyed by a hash of the model folder's bytes and of the
versions that shape the file, so it is built once per machine.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thaw.encoders.base import (
    ModelNotFoundError,
    ProgressCallback,
    batches_by_length,
    check_texts,
    folder_fingerprint,
    l2_normalize,
    model_base_name,
    quiet_transformers,
    read_json,
    resolve_model_folder,
    sentence_modules,
    set_offline,
    torch_threads,
)

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1  # bump when the exported graph changes, so old cache entries are not reused
OPSET = 17
INT8_FILE = "model.int8.onnx"


def default_cache_dir() -> Path:
    """Where exported models are kept unless told otherwise: ~/.cache/thaw/onnx."""
    return Path.home() / ".cache" / "thaw" / "onnx"


class OnnxInt8Encoder:
    """A `TextEncoder` running an int8 (per-channel) ONNX export of a sentence-transformers folder.

    Texts run one at a time by default (`batch_size=1`): dynamic quantisation scales activations
    per tensor, so in a batch a text's vector would depend on its neighbours and their padding
    (cosine between batch-1 and batch-32 vectors of the same title drops to 0.97). Alone, a text
    always gets the same vector, which the embedding cache relies on, and no padding is computed.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        threads: int = 1,
        batch_size: int = 1,
        name: str | None = None,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_path, is_default = resolve_model_folder(model_path)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.threads = threads
        self.batch_size = batch_size
        self.name = f"{name or model_base_name(self.model_path, is_default)}@onnx-int8"
        self._spec = _pooling_spec(self.model_path)
        self.dim = self._spec["dim"]
        self._session: Any = None
        self._tokenizer: Any = None
        self.onnx_path: Path | None = None
        self._lock = threading.Lock()  # serving threads may race to the first encode

    def __repr__(self) -> str:
        return f"OnnxInt8Encoder({str(self.model_path)!r}, threads={self.threads})"

    def encode(self, texts: Sequence[str], *, callback: ProgressCallback | None = None) -> np.ndarray:
        """Float32 vectors (len(texts), dim), batched longest-first."""
        texts = check_texts(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        self.load()
        done = 0
        for index in batches_by_length(texts, self.batch_size):
            out[index] = self._run([texts[i] for i in index])
            done += len(index)
            if callback is not None:
                callback(done, len(texts))
        return out

    def load(self) -> None:
        """Export and quantise if not cached yet, then open the ONNX Runtime session."""
        if self._session is not None:
            return
        with self._lock:
            if self._session is None:
                self._open()

    def _open(self) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ModelNotFoundError(
                "the ONNX int8 encoder needs onnxruntime and onnx: "
                "pip install 'onnxruntime>=1.20,<2' 'onnx>=1.17,<2'"
            ) from exc
        self.onnx_path = ensure_int8_export(self.model_path, self.cache_dir, threads=self.threads)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(str(self.onnx_path), options, providers=["CPUExecutionProvider"])
        tokenizer = Tokenizer.from_file(str(self.model_path / "tokenizer.json"))
        # The file may carry fixed-length padding; pad each batch only to its longest text.
        tokenizer.no_padding()
        pad_token = self._spec["pad_token"]
        pad_id = tokenizer.token_to_id(pad_token)
        tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token=pad_token)
        tokenizer.enable_truncation(max_length=self._spec["max_length"])
        self._tokenizer = tokenizer
        self._input_names = [i.name for i in session.get_inputs()]
        self._session = session  # last: it is what other threads check

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),  # (batch, seq)
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        (vectors,) = self._session.run(None, {k: feeds[k] for k in self._input_names})
        vectors = np.asarray(vectors, dtype=np.float32)  # (batch, dim)
        return l2_normalize(vectors) if self._spec["normalize"] else vectors


def ensure_int8_export(model_path: Path, cache_dir: Path, *, threads: int = 1) -> Path:
    """The cached int8 ONNX file of a model folder, exporting and quantising it first if needed."""
    target = cache_dir / export_key(model_path) / INT8_FILE
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("exporting %s to ONNX int8 in %s", model_path, target.parent)
    # Work in a private temporary folder and rename at the end, so concurrent processes and
    # interrupted runs never leave a half-written model where a reader could find it.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as work:
        fp32 = Path(work) / "model.fp32.onnx"
        export_onnx(model_path, fp32, threads=threads)
        staged = Path(work) / INT8_FILE
        quantize_int8(fp32, staged)
        os.replace(staged, target)
    meta = {"model_path": str(model_path), "format": EXPORT_FORMAT, "opset": OPSET, **_versions()}
    (target.parent / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return target


def export_key(model_path: Path) -> str:
    """Cache folder name: hash of the model's bytes, the export format and the tool versions."""
    import hashlib

    digest = hashlib.sha1(folder_fingerprint(model_path, contents=True).encode())
    digest.update(
        json.dumps({"format": EXPORT_FORMAT, "opset": OPSET, **_versions()}, sort_keys=True).encode()
    )
    return f"{model_path.name}-{digest.hexdigest()[:16]}"


def export_onnx(model_path: Path, out: Path, *, threads: int = 1) -> None:
    """Write the fp32 ONNX graph: token ids -> transformer -> pooling (-> L2 normalisation)."""
    set_offline()
    import torch
    from transformers import AutoModel

    spec = _pooling_spec(model_path)
    with torch_threads(threads), quiet_transformers():
        try:
            # Eager attention traces to plain MatMul/Softmax ops that every runtime understands.
            transformer = AutoModel.from_pretrained(
                str(model_path), local_files_only=True, attn_implementation="eager"
            ).eval()
        except OSError as exc:
            raise ModelNotFoundError(f"cannot load the transformer in {model_path}: {exc}") from exc
        accepted = inspect.signature(transformer.forward).parameters
        names = ["input_ids", "attention_mask"] + (["token_type_ids"] if "token_type_ids" in accepted else [])
        graph = _pooled_encoder(transformer, names, spec["mode"], spec["normalize"])
        # Trace with padding in the batch so the mask path is recorded, not specialised away.
        ids = torch.full((2, 8), 1000, dtype=torch.long)
        mask = torch.ones_like(ids)
        mask[1, 5:] = 0
        example = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
        axes = {n: {0: "batch", 1: "sequence"} for n in names}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
            torch.onnx.export(
                graph,
                tuple(example[n] for n in names),
                str(out),
                input_names=names,
                output_names=["sentence_embedding"],
                dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,  # the TorchScript exporter needs no onnxscript and handles BERT well
            )


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation of every MatMul weight, one scale per output channel."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))  # the quantiser warns on the root logger about pre-processing
    try:
        quantize_dynamic(str(source), str(target), per_channel=True, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


def _pooled_encoder(transformer: Any, names: list[str], mode: str, normalize: bool) -> Any:
    """The module to export (built here so importing this file does not import torch)."""
    import torch

    class PooledEncoder(torch.nn.Module):
        """Transformer, then mean or CLS pooling over real tokens, then optional L2 normalisation."""

        def __init__(self, transformer: Any, names: list[str], mode: str, normalize: bool) -> None:
            super().__init__()
            self.transformer = transformer
            self.names = names
            self.mode = mode
            self.normalize = normalize

        def forward(self, *inputs: Any) -> Any:
            kwargs = dict(zip(self.names, inputs, strict=True))
            hidden = self.transformer(**kwargs).last_hidden_state  # (batch, seq, width)
            if self.mode == "cls":
                pooled = hidden[:, 0]
            else:
                mask = kwargs["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (batch, seq, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (batch, width)
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
            return pooled

    return PooledEncoder(transformer, names, mode, normalize)


def _pooling_spec(folder: Path) -> dict[str, Any]:
    """What the export must reproduce: pooling mode, normalisation, width, tokenizer limits."""
    modules = sentence_modules(folder)
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    unsupported = [k for k in kinds if k not in ("Transformer", "Pooling", "Normalize")]
    if unsupported:
        raise ValueError(
            "ONNX export supports Transformer + Pooling (+ Normalize) models; "
            f"{folder} also has {unsupported}"
        )
    if not (folder / "tokenizer.json").is_file():
        raise ModelNotFoundError(f"{folder} has no tokenizer.json (a fast tokenizer file is needed for ONNX)")
    config = read_json(folder / "config.json")
    mode, width = "mean", int(config.get("hidden_size", 0))
    for module in modules:
        if str(module.get("type", "")).endswith("Pooling"):
            pooling = read_json(folder / module.get("path", "") / "config.json")
            modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v is True]
            if modes == ["pooling_mode_cls_token"]:
                mode = "cls"
            elif modes not in ([], ["pooling_mode_mean_tokens"]):
                raise ValueError(f"ONNX export supports mean or CLS pooling; {folder} uses {modes}")
            width = int(pooling.get("word_embedding_dimension") or width)
    max_length = int(config.get("max_position_embeddings", 512))
    bert_config = folder / "sentence_bert_config.json"
    if bert_config.is_file():
        max_length = min(max_length, int(read_json(bert_config).get("max_seq_length") or max_length))
    special = (
        read_json(folder / "special_tokens_map.json")
        if (folder / "special_tokens_map.json").is_file()
        else {}
    )
    pad_token = special.get("pad_token", "[PAD]")
    pad_token = pad_token.get("content", "[PAD]") if isinstance(pad_token, dict) else pad_token
    return {
        "mode": mode,
        "normalize": "Normalize" in kinds,
        "dim": width,
        "max_length": max_length,
        "pad_token": pad_token,
    }


def _versions() -> dict[str, str]:
    """Versions of the tools that shape the exported file (read from metadata: nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("torch", "transformers", "onnx", "onnxruntime"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "missing"
    return found


def clear_cache(cache_dir: Path | None = None) -> None:
    """Delete every exported model in the cache folder."""
    shutil.rmtree(cache_dir or default_cache_dir(), ignore_errors=True)
