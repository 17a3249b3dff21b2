"""Generated feedback: top users per cold item, calibrated confidences, an id warm-up kept on validation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from thaw.evaluation.harness import fit_data
from thaw.evaluation.splits import make_split
from thaw.evaluation.synthetic import synthetic_snapshot
from thaw.models.thaw_model import ThawConfig, ThawRecommender
from thaw.models.two_tower import TwoTowerConfig
from thaw.training import feedback
from thaw.training.loop import TrainConfig

SMALL = {"epochs": 2, "batch_users": 16, "n_random_negatives": 16}


def _fit(snapshot, data, **train: object) -> ThawRecommender:
    config = ThawConfig(model=TwoTowerConfig(hidden=16, attr_dim=4), train=TrainConfig(**(SMALL | train)),
                        encoder="hash")
    return ThawRecommender(config).fit(data, user_ids=snapshot.user_ids, item_ids=snapshot.item_ids)


@pytest.fixture(scope="module")
def fitted():
    snapshot = synthetic_snapshot(n_users=60, n_items=80, seed=5)
    data = fit_data(snapshot, make_split(snapshot, "cold-item", fold=0, n_folds=5, seed=5))
    return snapshot, data, _fit(snapshot, data, generated_feedback=4, feedback_epochs=3)


def test_every_cold_item_gets_its_best_warm_users_with_confidences(fitted) -> None:
    snapshot, data, model = fitted
    fed = model.feedback_
    cold = np.flatnonzero(~data.warm_items)
    assert sorted(set(fed.items)) == sorted(cold)
    assert np.all(np.bincount(fed.items, minlength=snapshot.n_items)[cold] == 4)
    assert data.warm_users[fed.users].all()  # only known users are generated
    assert fed.calibrated and np.all((fed.confidence > 0) & (fed.confidence <= 1))
    # Within an item, users come best first, and a better rank never has lower confidence.
    for item in cold[:5]:
        mine = fed.items == item
        assert list(fed.rank[mine]) == [1, 2, 3, 4]
        assert np.all(np.diff(fed.confidence[mine]) <= 1e-6)
    info = model.history_.feedback
    assert info["pairs"] == len(fed) and info["curve"][0]["epoch"] == 0 and len(info["curve"]) == 4


def test_warm_up_is_kept_only_when_validation_improves(fitted) -> None:
    _, data, model = fitted
    info = model.history_.feedback
    vals = [c["val"] for c in info["curve"]]
    assert info["best_val"] == max(vals)
    cold = ~data.warm_items
    if info["best_epoch"] == 0:  # validation preferred no feedback: cold items have no id part
        assert not model.warm_items_[cold].any()
    else:
        assert model.warm_items_[cold].all()


def test_calibration_is_the_share_of_real_pairs_by_score() -> None:
    top = np.array([[0, 1], [2, 3]])
    scores = np.array([[2.0, 1.0], [2.0, 1.0]])
    truth = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 1, 1]], np.float32))
    fitted = feedback.calibrate(top, scores, truth)
    assert fitted.predict([2.0])[0] == pytest.approx(1.0)  # both high-scoring pairs are real
    assert fitted.predict([1.0])[0] == pytest.approx(0.5)  # one of the two low-scoring ones
    assert feedback.calibrate(top[:0], scores[:0], truth[:0]) is None


def test_warm_up_changes_only_the_fed_items_id_rows() -> None:
    snapshot = synthetic_snapshot(n_users=60, n_items=80, seed=6)
    data = fit_data(snapshot, make_split(snapshot, "cold-item", fold=0, n_folds=5, seed=6))
    model = _fit(snapshot, data)
    network = model.model_
    before = {n: p.detach().clone() for n, p in network.named_parameters()}
    from thaw.training.loop import TrainingData

    training = TrainingData(data.train.tocsr().astype(np.float32), model._item_features(data.items),
                            model.user_features_, data.warm_users, data.warm_items, validation=None)
    config = TrainConfig(generated_feedback=3, feedback_epochs=2, feedback_lr=0.05)
    fed = feedback.generate(network, training, 3, config)
    assert not fed.calibrated and np.all(fed.confidence == 1.0)  # nothing held out to calibrate on
    info = feedback.warm_up(network, training, fed, config)
    assert info["best_epoch"] == 2  # without validation the last epoch is kept
    for name, p in network.named_parameters():
        if name != "item_id.weight":
            assert torch.equal(p.detach(), before[name]), name
    changed = (network.item_id.weight.detach() != before["item_id.weight"]).any(dim=1).numpy()
    assert set(np.flatnonzero(changed)) == set(np.unique(fed.items))


def test_feedback_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="generated_feedback"):
        TrainConfig(generated_feedback=-1)
    with pytest.raises(ValueError, match="feedback_epochs"):
        TrainConfig(feedback_epochs=0)
