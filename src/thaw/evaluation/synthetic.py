"""A seeded synthetic catalogue with topic structure, for tests and smoke runs.

Every user and item belongs to one of `n_topics` topics. An item's title names its topic (plus
filler words); a user's attributes name theirs. Users mostly interact with items of their own
topic, popular ones more often. So content can place a cold item, attributes can place a cold
user, and an ID-only model can do neither.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np

from thaw.data.dataset import Snapshot, snapshot_from_records
from thaw.data.records import EventRecord, ItemRecord, UserRecord

TOPIC_WORDS = (
    "galaxy", "violin", "protein", "football", "volcano", "poetry", "quantum", "recipe",
    "glacier", "opera", "robotics", "vaccine", "chess", "desert", "jazz", "orbit",
)
_FILLER = ("study", "notes", "new", "review", "guide", "story", "theory", "data", "field", "life")


def synthetic_snapshot(**options: Any) -> Snapshot:
    """A Snapshot with topic-structured content and interactions (see `synthetic_records`)."""
    return snapshot_from_records(*synthetic_records(**options))


def synthetic_records(
    n_users: int = 120,
    n_items: int = 200,
    n_topics: int = 4,
    interactions_per_user: int = 12,
    on_topic: float = 0.85,
    seed: int = 0,
    event_type: str = "purchase",
) -> tuple[list[UserRecord], list[ItemRecord], list[EventRecord]]:
    """Users, items and events with topic structure (see module docstring)."""
    if not 1 <= n_topics <= len(TOPIC_WORDS):
        raise ValueError(f"n_topics must be in [1, {len(TOPIC_WORDS)}]")
    if interactions_per_user < 1 or interactions_per_user > n_items:
        raise ValueError("interactions_per_user must be in [1, n_items]")
    rng = np.random.default_rng(seed)
    item_topic = np.arange(n_items) % n_topics
    user_topic = np.arange(n_users) % n_topics
    popularity = 1.0 / (1.0 + rng.permutation(n_items))  # Zipf-like, random order
    items = [
        ItemRecord(
            id=f"i{i}",
            title=f"{TOPIC_WORDS[item_topic[i]]} {' '.join(rng.choice(_FILLER, 2))}",
            attributes={"shelf": f"s{rng.integers(3)}"},
            derived={"tags": [f"tag-{TOPIC_WORDS[item_topic[i]]}"]},  # interaction-derived
        )
        for i in range(n_items)
    ]
    users = [UserRecord(id=f"u{u}", attributes={"topic": f"t{user_topic[u]}"}) for u in range(n_users)]
    start = datetime(2024, 1, 1)
    events = []
    for u in range(n_users):
        own = item_topic == user_topic[u]
        weights = popularity * np.where(own, on_topic / own.sum(), (1 - on_topic) / max((~own).sum(), 1))
        picked = rng.choice(n_items, interactions_per_user, replace=False, p=weights / weights.sum())
        for j, i in enumerate(picked):
            moment = start + timedelta(days=int(u), minutes=int(j))
            events.append(EventRecord(user=f"u{u}", item=f"i{i}", type=event_type, timestamp=moment))
    return users, items, events
