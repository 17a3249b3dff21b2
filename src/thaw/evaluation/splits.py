"""Cold-start splits with cross-validation over entities (the protocol in DESIGN.md).

A seeded permutation partitions the entities that have interactions (items for `cold-item`,
users for `cold-user` / `onboarding-k` / `onboarding-k-random`, both for `cold-both`) into
`n_folds` groups; fold f makes group f cold, so over all folds every entity is cold exactly once.
All interactions of a cold entity are held out and the cold entities are split 1:1 into
validation and test. The warm interactions are split 8:1:1 train/val/test. For `warm`, the interactions themselves are
partitioned into `n_folds` groups and fold f's group is split 1:1 into val/test.

As in ColdRec's `split.py`, a warm val/test pair whose user or item has no training pair is
moved into training, so every warm test pair can be scored by an ID-based model.

Interactions are unique (user, item) pairs: several events on one pair count once, so no pair
can be in training and in test at the same time. A pair's time is its first event's time.

An onboarding user reveals k interactions and the rest are the test: in `onboarding-k` their first
k by time (a newcomer's real first steps), in `onboarding-k-random` k drawn at random (seeded), the
common few-shot protocol. On MovieLens the two differ a lot: first ratings are mostly the same few
titles the sign-up pages showed (docs/methods.md).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from thaw.data.dataset import EventArrays, Snapshot

SCENARIOS: tuple[str, ...] = (
    "warm",
    "cold-item",
    "cold-user",
    "cold-both",
    "onboarding-1",
    "onboarding-3",
    "onboarding-5",
    "onboarding-3-random",
)
"""The named scenarios; `onboarding-k` and `onboarding-k-random` accept any k >= 1."""

WARM_FRACTIONS = (0.8, 0.1, 0.1)  # train / val / test of warm interactions
_ONBOARDING = re.compile(r"^onboarding-(\d+)(-random)?$")


def parse_scenario(scenario: str) -> tuple[str, int | None]:
    """`("onboarding", k)` for `onboarding-k` and `onboarding-k-random`, else `(scenario, None)`;
    raises on unknown names."""
    match = _ONBOARDING.match(scenario)
    if match:
        k = int(match.group(1))
        if k < 1:
            raise ValueError(f"onboarding needs k >= 1, got {scenario!r}")
        return "onboarding", k
    if scenario in ("warm", "cold-item", "cold-user", "cold-both"):
        return scenario, None
    raise ValueError(f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")


@dataclass(frozen=True)
class Pairs:
    """Unique (user, item) interactions as parallel int32 index arrays."""

    user: np.ndarray  # (n,) int32
    item: np.ndarray  # (n,) int32

    def __post_init__(self) -> None:
        if self.user.shape != self.item.shape or self.user.ndim != 1:
            raise ValueError("Pairs needs two 1-d arrays of equal length")

    def __len__(self) -> int:
        return len(self.user)

    @staticmethod
    def empty() -> Pairs:
        """No pairs."""
        return Pairs(np.zeros(0, np.int32), np.zeros(0, np.int32))

    def subset(self, mask: np.ndarray) -> Pairs:
        """The pairs where `mask` (boolean or index array) selects."""
        return Pairs(self.user[mask], self.item[mask])

    def keys(self, n_items: int) -> np.ndarray:
        """One int64 key per pair, `user * n_items + item`."""
        return self.user.astype(np.int64) * n_items + self.item.astype(np.int64)

    def matrix(self, n_users: int, n_items: int) -> sp.csr_matrix:
        """A binary (n_users, n_items) float32 CSR matrix."""
        m = sp.csr_matrix(
            (np.ones(len(self), np.float32), (self.user, self.item)), shape=(n_users, n_items)
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    def concat(self, other: Pairs) -> Pairs:
        """These pairs followed by `other`'s."""
        return Pairs(np.concatenate([self.user, other.user]), np.concatenate([self.item, other.item]))


@dataclass(frozen=True)
class Split:
    """One fold of one scenario: which pairs train, validate and test, and who is cold.

    `cold_users` / `cold_items` mark the held-out partition group (all their interactions are
    out of training). `revealed` holds onboarding users' k revealed interactions (the first k,
    or k at random): scoring-time history, never training. `stats` counts what the split did
    (moved and dropped pairs).
    """

    scenario: str
    fold: int
    n_folds: int
    seed: int
    n_users: int
    n_items: int
    train: Pairs
    val: Pairs
    test: Pairs
    cold_users: np.ndarray  # (n_users,) bool
    cold_items: np.ndarray  # (n_items,) bool
    revealed: Pairs = field(default_factory=Pairs.empty)
    reveal_k: int | None = None
    stats: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cold_users.shape != (self.n_users,) or self.cold_items.shape != (self.n_items,):
            raise ValueError("cold_users / cold_items must be boolean vectors over users / items")
        for name in ("train", "val", "test", "revealed"):
            pairs: Pairs = getattr(self, name)
            if len(pairs) and (pairs.user.max() >= self.n_users or pairs.item.max() >= self.n_items):
                raise ValueError(f"{name} pairs index outside {self.n_users} users x {self.n_items} items")

    @property
    def warm_users(self) -> np.ndarray:
        """(n_users,) bool: users with at least one training pair."""
        return np.bincount(self.train.user, minlength=self.n_users) > 0

    @property
    def warm_items(self) -> np.ndarray:
        """(n_items,) bool: items with at least one training pair."""
        return np.bincount(self.train.item, minlength=self.n_items) > 0

    def training_key(self) -> str:
        """A fingerprint of what models learn from (train + val pairs), to share fits across splits."""
        digest = hashlib.sha1()
        for pairs in (self.train, self.val):
            digest.update(np.sort(pairs.keys(self.n_items)).tobytes())
            digest.update(b"|")
        return digest.hexdigest()


def interaction_pairs(events: EventArrays, n_items: int) -> tuple[Pairs, np.ndarray]:
    """Unique pairs of `events` (sorted by user, then item) and each pair's first event time."""
    keys = events.user.astype(np.int64) * n_items + events.item.astype(np.int64)
    # Events are sorted by time, so the first occurrence of a key is its earliest event.
    unique, first = np.unique(keys, return_index=True)
    pairs = Pairs((unique // n_items).astype(np.int32), (unique % n_items).astype(np.int32))
    return pairs, events.time[first]


def make_split(
    snapshot: Snapshot,
    scenario: str,
    *,
    fold: int = 0,
    n_folds: int = 5,
    seed: int = 0,
    k: int | None = None,
) -> Split:
    """The split of `scenario` for cross-validation fold `fold` of `n_folds`.

    `k` is the onboarding reveal count (also accepted as the scenario name `onboarding-k`).
    """
    kind, scenario_k = parse_scenario(scenario) if scenario != "onboarding" else ("onboarding", k)
    if kind == "onboarding":
        k = k if k is not None else scenario_k
        if k is None or k < 1:
            raise ValueError("onboarding needs k >= 1")
        scenario = f"onboarding-{k}" + ("-random" if scenario.endswith("-random") else "")
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2 (fold f holds out 1/n_folds), got {n_folds}")
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold must be in [0, {n_folds}), got {fold}")
    pairs, times = interaction_pairs(snapshot.events, snapshot.n_items)
    if len(pairs) == 0:
        raise ValueError("the snapshot has no interactions to split")
    n_users, n_items = snapshot.n_users, snapshot.n_items
    # The partition depends on the seed only (the same in every fold); within-fold choices
    # depend on (seed, fold) so folds differ but every run of one fold is identical.
    partition_rng = np.random.default_rng([seed, 0xC01D])
    fold_rng = np.random.default_rng([seed, fold, 0xF01D])
    common: dict[str, Any] = dict(
        scenario=scenario, fold=fold, n_folds=n_folds, seed=seed, n_users=n_users, n_items=n_items
    )

    if kind == "warm":
        group = _groups(len(pairs), n_folds, partition_rng)
        held = np.flatnonzero(group == fold)
        held = held[fold_rng.permutation(len(held))]
        n_val = len(held) // 2
        train_idx = np.flatnonzero(group != fold)
        train_idx, val_idx, test_idx, moved = _ensure_in_train(
            pairs, train_idx, held[:n_val], held[n_val:], n_users, n_items
        )
        return Split(
            **common,
            train=pairs.subset(np.sort(train_idx)),
            val=pairs.subset(np.sort(val_idx)),
            test=pairs.subset(np.sort(test_idx)),
            cold_users=np.zeros(n_users, bool),
            cold_items=np.zeros(n_items, bool),
            stats={"moved_to_train": moved},
        )

    # Entities are partitioned users first, then items, from one stream: cold-both's user
    # partition equals cold-user's, so their cold users agree.
    cold_users = np.zeros(n_users, bool)
    cold_items = np.zeros(n_items, bool)
    user_group = _entity_groups(pairs.user, n_users, n_folds, partition_rng)
    item_group = _entity_groups(pairs.item, n_items, n_folds, partition_rng)
    if kind in ("cold-user", "cold-both", "onboarding"):
        cold_users = user_group == fold
    if kind in ("cold-item", "cold-both"):
        cold_items = item_group == fold

    pair_cold_user = cold_users[pairs.user]
    pair_cold_item = cold_items[pairs.item]
    warm_idx = np.flatnonzero(~pair_cold_user & ~pair_cold_item)
    train_idx, val_idx, test_idx = _split_811(warm_idx, fold_rng)
    train_idx, val_idx, test_idx, moved = _ensure_in_train(
        pairs, train_idx, val_idx, test_idx, n_users, n_items
    )

    # Cold entities split 1:1 into validation and test entities (cold-both: by user).
    if kind == "cold-item":
        cold_idx = np.flatnonzero(pair_cold_item)
        val_entities = _half(np.flatnonzero(cold_items), fold_rng)
        cold_val = np.isin(pairs.item[cold_idx], val_entities)
        dropped = 0
    else:
        cold_idx = np.flatnonzero(pair_cold_user & (pair_cold_item if kind == "cold-both" else True))
        val_entities = _half(np.flatnonzero(cold_users), fold_rng)
        cold_val = np.isin(pairs.user[cold_idx], val_entities)
        # cold-both: a cold user's pairs with warm items and a warm user's pairs with cold
        # items are neither trained on nor tested (they would leak or mix the scenarios).
        dropped = int((pair_cold_user ^ pair_cold_item).sum()) if kind == "cold-both" else 0
    val_idx = np.concatenate([val_idx, cold_idx[cold_val]])
    test_idx = np.concatenate([test_idx, cold_idx[~cold_val]])
    split = Split(
        **common,
        train=pairs.subset(np.sort(train_idx)),
        val=pairs.subset(np.sort(val_idx)),
        test=pairs.subset(np.sort(test_idx)),
        cold_users=cold_users,
        cold_items=cold_items,
        stats={"moved_to_train": moved, "dropped_mixed_pairs": dropped},
    )
    if kind == "onboarding":
        assert k is not None
        at_random = scenario.endswith("-random")
        split = _reveal(split, pairs, times, k, np.random.default_rng([seed, fold, 0x0B0A]), at_random=at_random)
    return split


def _groups(n: int, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) group ids in [0, n_folds): a seeded permutation cut into near-equal parts."""
    group = np.empty(n, np.int64)
    group[rng.permutation(n)] = np.arange(n) * n_folds // n
    return group


def _entity_groups(index: np.ndarray, n: int, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) group of every entity with interactions; -1 for entities without (never cold)."""
    active = np.flatnonzero(np.bincount(index, minlength=n) > 0)
    group = np.full(n, -1, np.int64)
    group[active] = _groups(len(active), n_folds, rng)
    return group


def _half(entities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The validation half of `entities` (the smaller half when odd, as ColdRec does)."""
    return entities[rng.permutation(len(entities))[: len(entities) // 2]]


def _split_811(idx: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Shuffle `idx` and cut it 8:1:1 (val and test get floor(10%) each, as ColdRec does)."""
    idx = idx[rng.permutation(len(idx))]
    n_val = int(WARM_FRACTIONS[1] * len(idx))
    n_test = int(WARM_FRACTIONS[2] * len(idx))
    n_train = len(idx) - n_val - n_test
    return idx[:n_train], idx[n_train : n_train + n_val], idx[n_train + n_val :]


def _ensure_in_train(
    pairs: Pairs,
    train: np.ndarray,
    val: np.ndarray,
    test: np.ndarray,
    n_users: int,
    n_items: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Move val/test pairs whose user or item has no training pair into training."""
    moved = 0
    held_parts = [val, test]
    for part in range(2):
        for side, n in ((pairs.user, n_users), (pairs.item, n_items)):
            in_train = np.bincount(side[train], minlength=n) > 0
            held = held_parts[part]
            orphan = ~in_train[side[held]]
            moved += int(orphan.sum())
            train = np.concatenate([train, held[orphan]])
            held_parts[part] = held[~orphan]
    return train, held_parts[0], held_parts[1], moved


def _reveal(
    split: Split, pairs: Pairs, times: np.ndarray, k: int, rng: np.random.Generator, *, at_random: bool = False
) -> Split:
    """Onboarding: each cold test user's first k pairs (or k at random) become scoring-time history.

    Order is by first-event time; ties (and datasets without timestamps) are broken by a
    seeded random key, never by id. `at_random` orders by that key alone. Users with <= k test
    pairs are excluded from the test.
    """
    test = split.test
    cold = split.cold_users[test.user]
    warm_test, cold_test = test.subset(~cold), test.subset(cold)
    # Look up each cold test pair's time through its key.
    all_keys = pairs.keys(split.n_items)
    keys = cold_test.keys(split.n_items)
    pair_time = times[np.searchsorted(all_keys, keys)]
    key = rng.random(len(keys))
    order = np.lexsort((key, cold_test.user) if at_random else (key, pair_time, cold_test.user))
    user_sorted = cold_test.user[order]
    starts = np.searchsorted(user_sorted, user_sorted, side="left")
    position = np.arange(len(order)) - starts  # rank of each pair within its user's history
    counts = np.bincount(user_sorted, minlength=split.n_users)
    eligible = counts[user_sorted] > k
    reveal = order[eligible & (position < k)]
    remain = order[eligible & (position >= k)]
    n_users_cold = int((counts > 0).sum())
    n_excluded = int(((counts > 0) & (counts <= k)).sum())
    stats = dict(split.stats)
    stats.update(
        onboarding_users=n_users_cold - n_excluded,
        onboarding_excluded_users=n_excluded,
        onboarding_excluded_pairs=int((~eligible).sum()),
    )
    return Split(
        scenario=split.scenario,
        fold=split.fold,
        n_folds=split.n_folds,
        seed=split.seed,
        n_users=split.n_users,
        n_items=split.n_items,
        train=split.train,
        val=split.val,
        test=warm_test.concat(cold_test.subset(np.sort(remain))),
        cold_users=split.cold_users,
        cold_items=split.cold_items,
        revealed=cold_test.subset(np.sort(reveal)),
        reveal_k=k,
        stats=stats,
    )
