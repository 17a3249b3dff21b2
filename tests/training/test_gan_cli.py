"""`thaw train --adversarial --generated-feedback N`: settings in the checkpoint, events, curves PNG."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from typer.testing import CliRunner

from thaw.cli import app
from thaw.data.datasets import write_records
from thaw.data.generated import items_with_real_events, read_generated
from thaw.data.records import EventRecord, ItemRecord, UserRecord
from thaw.data.store import Store
from thaw.evaluation.synthetic import synthetic_snapshot
from thaw.training.checkpoint import load
from thaw.training.curves import FILENAME


def _fill(store: Store) -> list[str]:
    """A synthetic catalogue plus three items nobody has touched yet; returns those three."""
    snapshot = synthetic_snapshot(n_users=50, n_items=70, seed=7)
    users = [UserRecord(u, a) for u, a in zip(snapshot.user_ids, snapshot.users.attributes, strict=True)]
    items = [ItemRecord(i, t, attributes=a) for i, t, a in
             zip(snapshot.item_ids, snapshot.items.titles, snapshot.items.attributes, strict=True)]
    new = [ItemRecord(f"new-{k}", f"{snapshot.items.titles[k]} sequel") for k in range(3)]
    events = [
        EventRecord(snapshot.user_ids[u], snapshot.item_ids[i], "purchase", datetime(2024, 1, 1), idempotency_key=f"{u}:{i}")
        for u, i in zip(snapshot.events.user, snapshot.events.item, strict=True)
    ]
    write_records(store, users, items + new, events)
    return [i.id for i in new]


def test_cli_adversarial_and_generated_feedback(tmp_path: Path, sqlite_url: str) -> None:
    with Store(sqlite_url) as store:
        new = _fill(store)
        real_before = store.stats().events
        untouched = {i.id for i in store.iter_items()} - items_with_real_events(store)
    assert set(new) <= untouched
    config = tmp_path / "thaw.toml"
    config.write_text("[model]\nhidden = 16\n\n[train]\nbatch_users = 16\nn_random_negatives = 16\nfeedback_epochs = 2\n")
    out = tmp_path / "model"
    result = CliRunner().invoke(app, [
        "train", "--db", sqlite_url, "--config", str(config), "--encoder", "hash", "--epochs", "2",
        "--adversarial", "--generated-feedback", "4", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert "generated events stored" in result.output
    loaded = load(out)
    train = loaded.config_.train
    assert train.adversarial and train.generated_feedback == 4 and loaded.model_config_.residual_text
    meta = json.loads((out / "meta.json").read_text())
    assert meta["config"]["train"]["gan_alpha"] == train.gan_alpha
    assert meta["history"]["feedback"]["pairs"] > 0
    assert all(e.get("g_loss") is not None for e in meta["history"]["epochs"][1:])
    png = out / FILENAME
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Store(sqlite_url) as store:
        pairs = read_generated(store)
        assert {p.item for p in pairs} == untouched  # only items without real events are fed
        assert len(pairs) == 4 * len(untouched) and all(0 < p.confidence <= 1 for p in pairs)
        assert store.stats().events == real_before  # generated events are never real data
        assert items_with_real_events(store).isdisjoint(untouched)
        assert store.delete_generated_events() == len(pairs) and not read_generated(store)


def test_cli_without_the_flags_keeps_them_off(tmp_path: Path, sqlite_url: str) -> None:
    with Store(sqlite_url) as store:
        _fill(store)
    out = tmp_path / "plain"
    result = CliRunner().invoke(app, [
        "train", "--db", sqlite_url, "--encoder", "hash", "--epochs", "1", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    train = load(out).config_.train
    assert not train.adversarial and train.generated_feedback == 0
    assert (out / FILENAME).is_file()
    with Store(sqlite_url) as store:
        assert store.stats().generated_events == 0
