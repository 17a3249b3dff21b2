"""GAR: alternating recommender/generator updates change the right parameters, deterministically."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from thaw.evaluation.harness import fit_data
from thaw.evaluation.splits import make_split
from thaw.evaluation.synthetic import synthetic_snapshot
from thaw.models.thaw_model import ThawConfig, ThawRecommender
from thaw.models.two_tower import TwoTower, TwoTowerConfig
from thaw.training import adversarial
from thaw.training.loop import TrainConfig

SMALL = {"epochs": 2, "batch_users": 16, "n_random_negatives": 16}


def _config(**train: object) -> ThawConfig:
    return ThawConfig(model=TwoTowerConfig(hidden=16, attr_dim=4, residual_text=True),
                      train=TrainConfig(**(SMALL | train)), encoder="hash")


@pytest.fixture(scope="module")
def data():
    snapshot = synthetic_snapshot(n_users=60, n_items=80, seed=4)
    return snapshot, fit_data(snapshot, make_split(snapshot, "cold-item", fold=0, n_folds=5, seed=4))


def _fit(data, **train: object) -> ThawRecommender:
    snapshot, fit = data
    return ThawRecommender(_config(**train)).fit(fit, user_ids=snapshot.user_ids, item_ids=snapshot.item_ids)


def test_adversarial_training_records_both_losses_and_is_deterministic(data) -> None:
    first = _fit(data, adversarial=True)
    second = _fit(data, adversarial=True)
    trained = [e for e in first.history_.epochs if e["epoch"] > 0]
    assert trained and all(np.isfinite(e["d_loss"]) and np.isfinite(e["g_loss"]) for e in trained)
    assert [e["g_loss"] for e in trained] == [e["g_loss"] for e in second.history_.epochs if e["epoch"] > 0]
    np.testing.assert_array_equal(first.item_vectors_.numpy(), second.item_vectors_.numpy())
    plain = _fit(data)
    assert "g_loss" not in plain.history_.epochs[-1]  # off by default: the loop is unchanged


def _tiny_model(seed: int = 0) -> TwoTower:
    model = TwoTower(TwoTowerConfig(hidden=8, attr_dim=4, residual_text=True, n_users=5, n_items=6, text_dim=8))
    model.reset_parameters(torch.Generator().manual_seed(seed))
    with torch.no_grad():  # give the residual's last layer and the ids some weight, as after training
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(seed + 1)))
    return model


def test_recommender_term_moves_only_the_recommender_and_generator_step_only_the_generator() -> None:
    from thaw.models.tower_data import EntityFeatures
    from thaw.training.loop import TrainingData
    import scipy.sparse as sp

    model = _tiny_model()
    rng = np.random.default_rng(0)
    items = EntityFeatures(rng.normal(size=(6, 8)).astype(np.float32), None, None)
    users = EntityFeatures(None, None, None)
    train = sp.csr_matrix(np.eye(5, 6, dtype=np.float32))
    data = TrainingData(train, items, users, np.ones(5, bool), np.ones(6, bool))
    config = TrainConfig(adversarial=True, gan_lr=0.05)
    recommender_opt = torch.optim.SGD(adversarial.recommender_parameters(model), lr=0.1)
    adversary = adversarial.Adversary(model, config, recommender_opt, data, None)
    gen_ids = {id(p) for p in adversarial.generator_parameters(model)}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    candidates = np.arange(6)
    content = model.item_content(items.rows(candidates))
    id_part = model.item_id_part(torch.from_numpy(candidates))
    user_vec = torch.cat([model.user_id.weight[:5] * 10, torch.ones(5, 1)], dim=1)
    positives = torch.from_numpy(np.eye(5, 6, dtype=bool))
    excluded = torch.zeros(5, 6, dtype=torch.bool)
    term = adversary.recommender_term(user_vec, content, id_part, positives, excluded, candidates)
    term.backward()
    for name, p in model.named_parameters():
        if id(p) in gen_ids:
            assert p.grad is None or not p.grad.any(), f"the recommender's term reached generator {name}"
    assert model.item_id.weight.grad is not None and model.item_id.weight.grad.any()

    recommender_opt.step()  # the post-step hook runs the generator's step
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    by_name = dict(model.named_parameters())
    assert "item_id.weight" in changed and "user_id.weight" in changed
    assert any(id(by_name[n]) in gen_ids for n in changed), "the generator did not step"
    assert adversary.pop_epoch_losses()["g_loss"] is not None
    assert adversary.pop_epoch_losses() == {"d_loss": None, "g_loss": None}  # popped: reset


def test_generator_needs_a_text_path_and_settings_are_checked() -> None:
    model = TwoTower(TwoTowerConfig(hidden=8, n_users=3, n_items=4, text_dim=8))
    with pytest.raises(ValueError, match="residual_text"):
        adversarial.Adversary(model, TrainConfig(adversarial=True), torch.optim.SGD(model.parameters(), lr=0.1),
                              None, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gan_alpha"):
        TrainConfig(gan_alpha=1.5)
    with pytest.raises(ValueError, match="gan_lr"):
        TrainConfig(gan_lr=0.0)


def test_settings_round_trip_through_the_config(data) -> None:
    config = dataclasses.replace(_config(adversarial=True, gan_alpha=0.3, gan_weight=0.2, generated_feedback=5))
    again = ThawConfig.from_dict(config.to_dict())
    assert again == config and again.train.adversarial and again.train.generated_feedback == 5
