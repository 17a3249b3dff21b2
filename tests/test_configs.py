"""Every settings file in configs/ is one `thaw train --config` accepts, with what it says it sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from thaw.cli.train import read_config
from thaw.models.thaw_model import ThawConfig

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_file_builds_a_thaw_config(path: Path) -> None:
    values = read_config(path)
    config = ThawConfig.from_dict(values)
    for key, value in values.get("model", {}).items():
        assert getattr(config.model, key) == value
    for key, value in values.get("train", {}).items():
        assert getattr(config.train, key) == value


def test_citeulike_settings_borrow_collaborative_ids() -> None:
    config = ThawConfig.from_dict(read_config(next(p for p in CONFIGS if p.name == "citeulike-a.toml")))
    assert config.model.id_init == "als" and config.model.id_dim > 0 and config.train.cold_id_neighbors > 0
