"""Splits: cross-validation over entities, proportions, leakage guards, onboarding, seeds."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from thaw.data.dataset import snapshot_from_records
from thaw.data.records import EventRecord, ItemRecord, UserRecord
from thaw.evaluation.splits import SCENARIOS, interaction_pairs, make_split, parse_scenario

COLD_SCENARIOS = ("cold-item", "cold-user", "cold-both", "onboarding-1", "onboarding-3", "onboarding-5")


def _keys(pairs, n_items):
    return set(pairs.keys(n_items).tolist())


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("fold", range(5))
def test_no_training_pair_of_a_cold_entity(snapshot, scenario: str, fold: int) -> None:
    split = make_split(snapshot, scenario, fold=fold)
    assert not split.cold_items[split.train.item].any()
    assert not split.cold_users[split.train.user].any()
    assert not split.cold_items[split.warm_items].any()
    assert not split.cold_users[split.warm_users].any()
    n = snapshot.n_items
    train, val, test, revealed = (_keys(p, n) for p in (split.train, split.val, split.test, split.revealed))
    assert not train & val and not train & test and not val & test
    assert not revealed & train and not revealed & test and not revealed & val


@pytest.mark.parametrize("scenario", ["warm", "cold-item", "cold-user", "onboarding-3"])
def test_every_pair_is_used_once(snapshot, scenario: str) -> None:
    pairs, _ = interaction_pairs(snapshot.events, snapshot.n_items)
    split = make_split(snapshot, scenario, fold=2)
    parts = [split.train, split.val, split.test, split.revealed]
    used = np.concatenate([p.keys(snapshot.n_items) for p in parts])
    excluded = split.stats.get("onboarding_excluded_pairs", 0)
    assert len(used) == len(np.unique(used)) == len(pairs) - excluded


@pytest.mark.parametrize(("scenario", "side"), [("cold-item", "items"), ("cold-user", "users")])
def test_each_entity_cold_exactly_once_over_the_folds(snapshot, scenario: str, side: str) -> None:
    counts = sum(getattr(make_split(snapshot, scenario, fold=f), f"cold_{side}").astype(int) for f in range(5))
    active = np.bincount(
        snapshot.events.item if side == "items" else snapshot.events.user,
        minlength=snapshot.n_items if side == "items" else snapshot.n_users,
    ) > 0
    assert (counts[active] == 1).all()
    assert (counts[~active] == 0).all()
    sizes = [getattr(make_split(snapshot, scenario, fold=f), f"cold_{side}").sum() for f in range(5)]
    assert max(sizes) - min(sizes) <= 1  # 20% each


def test_cold_both_partitions_both_sides(snapshot) -> None:
    users = sum(make_split(snapshot, "cold-both", fold=f).cold_users.astype(int) for f in range(5))
    items = sum(make_split(snapshot, "cold-both", fold=f).cold_items.astype(int) for f in range(5))
    active_items = np.bincount(snapshot.events.item, minlength=snapshot.n_items) > 0
    assert (users == 1).all() and (items[active_items] == 1).all() and (items[~active_items] == 0).all()
    split = make_split(snapshot, "cold-both", fold=0)
    cold_pairs = split.cold_users[split.test.user]
    assert split.cold_items[split.test.item[cold_pairs]].all()  # cold users' tests are cold items
    assert split.stats["dropped_mixed_pairs"] > 0
    # cold-both's cold users are cold-user's: one partition of users per seed.
    assert np.array_equal(split.cold_users, make_split(snapshot, "cold-user", fold=0).cold_users)


def test_cold_entities_split_one_to_one(snapshot) -> None:
    split = make_split(snapshot, "cold-item", fold=3)
    cold = np.flatnonzero(split.cold_items)
    val_items = set(split.val.item[split.cold_items[split.val.item]].tolist())
    test_items = set(split.test.item[split.cold_items[split.test.item]].tolist())
    assert not val_items & test_items
    assert val_items | test_items == set(cold.tolist())
    assert len(val_items) == len(cold) // 2


def test_warm_pairs_split_eight_one_one(big_snapshot) -> None:
    split = make_split(big_snapshot, "cold-item", fold=0)
    warm_val = (~split.cold_items[split.val.item]).sum()
    warm_test = (~split.cold_items[split.test.item]).sum()
    total = len(split.train) + warm_val + warm_test
    assert len(split.train) / total == pytest.approx(0.8, abs=0.02)
    assert warm_val / total == pytest.approx(0.1, abs=0.02)
    assert warm_test / total == pytest.approx(0.1, abs=0.02)
    # ColdRec's rule: every warm val/test pair has a user and an item seen in training.
    for pairs in (split.val, split.test):
        warm = ~split.cold_items[pairs.item]
        assert split.warm_users[pairs.user[warm]].all()
        assert split.warm_items[pairs.item[warm]].all()


def test_warm_scenario_holds_out_each_pair_once(big_snapshot) -> None:
    n = big_snapshot.n_items
    held = np.concatenate([
        np.concatenate([s.val.keys(n), s.test.keys(n)])
        for s in (make_split(big_snapshot, "warm", fold=f) for f in range(5))
    ])
    assert len(held) == len(np.unique(held))  # never held out twice
    pairs, _ = interaction_pairs(big_snapshot.events, n)
    moved = sum(make_split(big_snapshot, "warm", fold=f).stats["moved_to_train"] for f in range(5))
    assert len(held) + moved == len(pairs)  # and always once, unless moved into training
    split = make_split(big_snapshot, "warm", fold=1)
    assert len(split.val) + len(split.test) == pytest.approx(0.2 * len(pairs), rel=0.05)
    assert abs(len(split.val) - len(split.test)) <= 1 + split.stats["moved_to_train"]


def test_same_seed_same_split_other_seed_other_split(snapshot) -> None:
    for scenario in SCENARIOS:
        a, b = make_split(snapshot, scenario, fold=1, seed=4), make_split(snapshot, scenario, fold=1, seed=4)
        for name in ("train", "val", "test", "revealed"):
            assert np.array_equal(getattr(a, name).user, getattr(b, name).user)
            assert np.array_equal(getattr(a, name).item, getattr(b, name).item)
        assert a.training_key() == b.training_key()
        c = make_split(snapshot, scenario, fold=1, seed=5)
        assert a.training_key() != c.training_key()


def test_folds_differ(snapshot) -> None:
    keys = {make_split(snapshot, "cold-item", fold=f).training_key() for f in range(5)}
    assert len(keys) == 5


def _timed_snapshot(same_time: bool):
    """4 users, 10 items; user u rates items in the order 9, 8, ..., 0 (later = lower id)."""
    users = [UserRecord(f"u{u}") for u in range(10)]
    items = [ItemRecord(f"i{i}", title=f"item {i}") for i in range(10)]
    start = datetime(2024, 1, 1)
    events = []
    for u in range(10):
        n = 2 + u % 5  # 2..6 interactions
        for j, i in enumerate(range(9, 9 - n, -1)):
            moment = start if same_time else start + timedelta(hours=j)
            events.append(EventRecord(f"u{u}", f"i{i}", "rating", moment, value=4.0))
    return snapshot_from_records(users, items, events)


def test_onboarding_reveals_the_chronologically_first_k() -> None:
    snap = _timed_snapshot(same_time=False)
    for fold in range(5):
        split = make_split(snap, "onboarding-3", fold=fold)
        cold_test_users = set(split.revealed.user.tolist())
        for u in cold_test_users:
            revealed = sorted(split.revealed.item[split.revealed.user == u].tolist())
            assert revealed == [7, 8, 9]  # the first three in time, whatever their ids
            rest = split.test.item[split.test.user == u]
            assert len(rest) > 0 and (rest < 7).all()
        assert split.reveal_k == 3
        assert split.cold_users[split.revealed.user].all()


def test_random_onboarding_reveals_k_seeded_picks_of_the_same_users() -> None:
    snap = _timed_snapshot(same_time=False)
    picks = set()
    for fold in range(5):
        first = make_split(snap, "onboarding-3", fold=fold)
        split = make_split(snap, "onboarding-3-random", fold=fold)
        assert split.scenario == "onboarding-3-random" and split.reveal_k == 3
        assert first.training_key() == split.training_key()  # one fit serves both
        assert np.array_equal(np.unique(first.revealed.user), np.unique(split.revealed.user))
        again = make_split(snap, "onboarding-3-random", fold=fold)
        assert np.array_equal(split.revealed.item, again.revealed.item)  # seeded
        for u in np.unique(split.revealed.user):
            revealed = split.revealed.item[split.revealed.user == u]
            rest = split.test.item[split.test.user == u]
            assert len(revealed) == 3 and not set(revealed.tolist()) & set(rest.tolist())
            held = [*first.revealed.item[first.revealed.user == u], *first.test.item[first.test.user == u]]
            assert sorted(revealed.tolist() + rest.tolist()) == sorted(int(i) for i in held)  # the same items, cut elsewhere
            picks.add(tuple(sorted(revealed.tolist())))
    assert len(picks) > 1 and picks != {(7, 8, 9)}  # not the first three in time


def test_onboarding_excludes_short_histories_and_counts_them() -> None:
    snap = _timed_snapshot(same_time=False)
    total_excluded = 0
    for fold in range(5):
        base = make_split(snap, "cold-user", fold=fold)
        split = make_split(snap, "onboarding-3", fold=fold)
        assert np.array_equal(base.cold_users, split.cold_users)  # same cold users as cold-user
        assert base.training_key() == split.training_key()  # trains on the same pairs
        cold_test = base.test.user[base.cold_users[base.test.user]]
        counts = np.bincount(cold_test, minlength=snap.n_users)
        short = set(np.flatnonzero((counts > 0) & (counts <= 3)).tolist())
        assert split.stats["onboarding_excluded_users"] == len(short)
        assert not short & set(split.test.user.tolist())
        assert not short & set(split.revealed.user.tolist())
        total_excluded += len(short)
    assert total_excluded > 0


def test_onboarding_ties_are_broken_by_seed_not_id() -> None:
    snap = _timed_snapshot(same_time=True)  # no usable timestamps, like CiteULike
    reveals = set()
    for seed in range(6):
        split = make_split(snap, "onboarding-1", fold=0, seed=seed)
        reveals.add(tuple(split.revealed.item.tolist()))
    assert len(reveals) > 1


def test_several_events_on_one_pair_make_one_pair() -> None:
    users = [UserRecord(f"u{u}") for u in range(20)]
    items = [ItemRecord(f"i{i}") for i in range(10)]
    t = datetime(2024, 1, 1)
    events = [
        EventRecord(f"u{u}", f"i{(u + j) % 10}", kind, t + timedelta(minutes=j))
        for u in range(20) for j in range(5) for kind in ("view", "click", "purchase")
    ]
    snap = snapshot_from_records(users, items, events)
    pairs, _ = interaction_pairs(snap.events, snap.n_items)
    assert len(pairs) == 100
    split = make_split(snap, "warm", fold=0)
    assert len(split.train) + len(split.val) + len(split.test) == 100


def test_bad_arguments(snapshot) -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        make_split(snapshot, "lukewarm")
    with pytest.raises(ValueError, match="fold"):
        make_split(snapshot, "cold-item", fold=5)
    with pytest.raises(ValueError, match="n_folds"):
        make_split(snapshot, "cold-item", n_folds=1)
    assert parse_scenario("onboarding-7") == ("onboarding", 7)
    assert parse_scenario("onboarding-7-random") == ("onboarding", 7)
    with pytest.raises(ValueError, match="unknown scenario"):
        make_split(snapshot, "onboarding-3-shuffled")
    assert make_split(snapshot, "onboarding", k=2).scenario == "onboarding-2"
