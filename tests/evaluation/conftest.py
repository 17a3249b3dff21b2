"""Fixtures for the evaluation tests: small seeded synthetic snapshots."""

from __future__ import annotations

import pytest

from thaw.data.dataset import Snapshot
from thaw.evaluation.synthetic import synthetic_snapshot


@pytest.fixture(scope="session")
def snapshot() -> Snapshot:
    """120 users x 200 items in 4 topics, 12 interactions each."""
    return synthetic_snapshot(n_users=120, n_items=200, interactions_per_user=12, seed=0)


@pytest.fixture(scope="session")
def big_snapshot() -> Snapshot:
    """A larger catalogue for statistical checks (400 users x 300 items)."""
    return synthetic_snapshot(n_users=400, n_items=300, interactions_per_user=20, seed=1)
