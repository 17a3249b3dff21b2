"""Fixtures for baseline tests: a synthetic snapshot and one cold-item split of it."""

from __future__ import annotations

import pytest

from thaw.evaluation.synthetic import synthetic_snapshot


@pytest.fixture(scope="session")
def snapshot():
    """120 users x 200 items in 4 topics."""
    return synthetic_snapshot(n_users=120, n_items=200, interactions_per_user=12, seed=0)
