"""API keys by scope, and the config read from a file and the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from thaw.serving.config import load_serve_config


def test_scopes(make_client) -> None:
    c = make_client(read_keys=frozenset({"r"}), write_keys=frozenset({"w"}), admin_keys=frozenset({"a"}))
    item = {"id": "x", "title": "t"}
    assert c.post("/items", json=item).status_code == 401
    assert c.post("/items", json=item, headers={"Authorization": "Bearer nope"}).status_code == 401
    r = c.post("/items", json=item, headers={"Authorization": "Bearer r"})
    assert r.status_code == 403 and "write" in r.json()["detail"]
    assert c.post("/items", json=item, headers={"Authorization": "Bearer w"}).status_code == 200
    assert c.post("/items", json=item, headers={"Authorization": "Bearer a"}).status_code == 200
    for key in ("r", "w", "a"):
        assert c.get("/items/x/similar", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert c.get("/items/x/similar").status_code == 401
    assert c.get("/admin/models", headers={"Authorization": "Bearer w"}).status_code == 403
    assert c.get("/admin/models", headers={"Authorization": "Bearer a"}).status_code == 200
    assert c.get("/health").json()["auth"] == "keys"
    assert c.get("/health").status_code == 200 and c.get("/metrics").status_code == 200


def test_config_file_environment_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "thaw.toml"
    path.write_text(
        '[serve]\ndb_url = "sqlite:///a.sqlite"\nport = 9000\nread_keys = ["k1", "k2"]\n'
        "[serve.limits]\nmax_k = 50\n[serve.exploration]\nshare = 0.2\n"
    )
    cfg = load_serve_config(config_file=path, environ={"THAW_WRITE_KEYS": "w1, w2", "THAW_PORT": "9100"})
    assert cfg.db_url == "sqlite:///a.sqlite" and cfg.port == 9100
    assert cfg.read_keys == {"k1", "k2"} and cfg.write_keys == {"w1", "w2"}
    assert cfg.limits.max_k == 50 and cfg.exploration.share == 0.2
    cfg = load_serve_config(config_file=path, environ={}, overrides={"exploration.share": 0.0, "port": 1})
    assert cfg.exploration.share == 0.0 and cfg.port == 1
    assert not load_serve_config(environ={}).auth_enabled


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[serve]\nbogus = 1\n", "unknown serve setting 'bogus'"),
        ("[serve.limits]\nmax_k = 0\n", "max_k must be >= 1"),
        ("[serve.exploration]\nshare = 2\n", "share must be in [0, 1]"),
        ("[serve]\nport = 'x'\n", "invalid literal"),
        ("[serve\n", "cannot read config file"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"bad\.toml") as info:
        load_serve_config(config_file=path, environ={})
    assert message in str(info.value)


def test_index_and_sync_settings(tmp_path: Path) -> None:
    path = tmp_path / "serve.toml"
    path.write_text("[serve]\nhnsw_ef_search = 64\nsync_seconds = 0.2\nhistory_cache_users = 0\n")
    cfg = load_serve_config(config_file=path, environ={"THAW_ANN_THRESHOLD": "2000"})
    assert cfg.ann_threshold == 2000 and cfg.sync_seconds == 0.2 and cfg.history_cache_users == 0
    assert cfg.hnsw_options == {"m": 32, "ef_construction": 200, "ef_search": 64, "n_threads": 1}
    for bad, message in (("ann_threshold = 0", "ann_threshold"), ("hnsw_m = 1", "hnsw_m"), ("sync_seconds = 0", "sync_seconds")):
        path.write_text(f"[serve]\n{bad}\n")
        with pytest.raises(ValueError, match=message):
            load_serve_config(config_file=path, environ={})
