"""Self-describing checkpoints: a fitted `ThawRecommender` saved to, and rebuilt from, one folder.

`DIR/meta.json` holds what a person (or a server) wants to read: the thaw version, the config,
the encoder name, id maps, attribute encoders and the training history. `DIR/tensors.pt` holds
the weights and the arrays `score()` needs (catalogue item vectors, user features). `load(dir)`
reads only these two files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

import thaw
from thaw.models.tfidf_text import TfidfTextEncoder
from thaw.models.thaw_model import ThawConfig, ThawRecommender
from thaw.models.tower_data import EntityFeatures
from thaw.models.two_tower import TwoTower, TwoTowerConfig
from thaw.training.loop import History

FORMAT = 1
META = "meta.json"
TENSORS = "tensors.pt"


class CheckpointError(ValueError):
    """A checkpoint folder is missing, incomplete or from an incompatible format."""


def save(model: ThawRecommender, directory: str | os.PathLike[str]) -> Path:
    """Write a fitted model to `directory` (created if needed); returns the folder."""
    if not hasattr(model, "model_"):
        raise ValueError("only a fitted ThawRecommender can be saved")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "kind": "thaw.ThawRecommender",
        "thaw_version": thaw.__version__,
        "torch_version": torch.__version__,
        "encoder": model.config_.encoder,
        "config": model.config_.to_dict(),
        "model_config": _asdict(model.model_config_),
        "user_ids": list(model.user_ids_),
        "item_ids": list(model.item_ids_),
        "item_attributes": _encoder_state(model.item_attributes_),
        "user_attributes": _encoder_state(model.user_attributes_),
        "history": model.history_.to_dict(),
    }
    users = model.user_features_
    tensors: dict[str, torch.Tensor] = {
        f"state.{name}": value.detach().clone() for name, value in model.model_.state_dict().items()
    }
    tensors["item_vectors"] = model.item_vectors_.detach().clone()
    tensors["warm_users"] = torch.from_numpy(model.warm_users_.astype(np.bool_))
    tensors["warm_items"] = torch.from_numpy(model.warm_items_.astype(np.bool_))
    sources = getattr(model, "id_sources_", None)  # items with a trained id part (neighbor_ids.py)
    if sources is not None:
        tensors["id_sources"] = torch.from_numpy(np.asarray(sources, np.bool_))
    if users.text is not None:
        tensors["users.text"] = torch.from_numpy(users.text)
    if users.numeric is not None:
        tensors["users.numeric"] = torch.from_numpy(users.numeric)
    if users.categorical is not None:
        csr = users.categorical.tocsr()
        tensors["users.cat.data"] = torch.from_numpy(csr.data.astype(np.float32))
        tensors["users.cat.indices"] = torch.from_numpy(csr.indices.astype(np.int64))
        tensors["users.cat.indptr"] = torch.from_numpy(csr.indptr.astype(np.int64))
        meta["user_categories"] = int(csr.shape[1])
    if model.text_encoder_ is not None:
        settings, arrays = model.text_encoder_.state()
        meta["text_encoder"] = settings
        tensors.update({f"text_encoder.{k}": torch.from_numpy(v) for k, v in arrays.items()})
    # Write to temporary names, then rename: a crash never leaves a half-written checkpoint.
    torch.save(tensors, folder / (TENSORS + ".tmp"))
    (folder / (META + ".tmp")).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    os.replace(folder / (TENSORS + ".tmp"), folder / TENSORS)
    os.replace(folder / (META + ".tmp"), folder / META)
    return folder


def load(directory: str | os.PathLike[str]) -> ThawRecommender:
    """A ready `ThawRecommender` (Recommender and EmbeddingModel) rebuilt from `directory`."""
    folder = Path(directory)
    meta_path, tensor_path = folder / META, folder / TENSORS
    for path in (meta_path, tensor_path):
        if not path.is_file():
            raise CheckpointError(f"{path} is missing: {folder} is not a thaw checkpoint")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{meta_path} is not valid JSON: {exc}") from exc
    if meta.get("format") != FORMAT or meta.get("kind") != "thaw.ThawRecommender":
        raise CheckpointError(
            f"{meta_path}: format {meta.get('format')!r} / kind {meta.get('kind')!r} is not "
            f"a thaw checkpoint of format {FORMAT}"
        )
    tensors = torch.load(tensor_path, map_location="cpu", weights_only=True)
    config = ThawConfig.from_dict(meta["config"])
    model_config = TwoTowerConfig(**meta["model_config"])
    network = TwoTower(model_config)
    state = {key[len("state."):]: value for key, value in tensors.items() if key.startswith("state.")}
    network.load_state_dict(state)
    network.eval()

    recommender = ThawRecommender(config)
    recommender.config_ = config
    recommender.model_ = network
    recommender.model_config_ = model_config
    recommender.history_ = History.from_dict(meta["history"])
    recommender.user_ids_ = list(meta["user_ids"])
    recommender.item_ids_ = list(meta["item_ids"])
    recommender.warm_users_ = tensors["warm_users"].numpy().astype(bool)
    recommender.warm_items_ = tensors["warm_items"].numpy().astype(bool)
    if "id_sources" in tensors:  # what new items borrow id parts from (neighbor_ids.borrowed_part)
        recommender.id_sources_ = tensors["id_sources"].numpy().astype(bool)
    recommender.item_vectors_ = tensors["item_vectors"]
    recommender.item_attributes_ = _encoder_from_state(meta["item_attributes"])
    recommender.user_attributes_ = _encoder_from_state(meta["user_attributes"])
    categorical = None
    if "users.cat.indptr" in tensors:
        categorical = sp.csr_matrix(
            (tensors["users.cat.data"].numpy(), tensors["users.cat.indices"].numpy(),
             tensors["users.cat.indptr"].numpy()),
            shape=(len(recommender.user_ids_), int(meta["user_categories"])),
        )
    recommender.user_features_ = EntityFeatures(
        text=tensors["users.text"].numpy() if "users.text" in tensors else None,
        categorical=categorical,
        numeric=tensors["users.numeric"].numpy() if "users.numeric" in tensors else None,
    )
    recommender.text_encoder_ = None
    if "text_encoder" in meta:
        arrays = {k.split(".", 1)[1]: v.numpy() for k, v in tensors.items() if k.startswith("text_encoder.")}
        recommender.text_encoder_ = TfidfTextEncoder.from_state(meta["text_encoder"], arrays)
    recommender._index()
    return recommender


def _asdict(config: TwoTowerConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(config)


def _encoder_state(encoder: Any) -> dict[str, Any] | None:
    return None if encoder is None else encoder.to_dict()


def _encoder_from_state(state: dict[str, Any] | None) -> Any:
    if state is None:
        return None
    from thaw.encoders.features import AttributeEncoder

    return AttributeEncoder.from_dict(state)
