"""Forgetting a person in a serving worker: the store's rows, and what this process holds of them.

`Store.delete_user` removes the user's row, events (real and generated), impressions and the
cached vector of their text. A worker also holds the person in memory: impressions not yet
written, their cached history (and text vector), their kept model vector, popularity counts, the kept vectors of every
user behind item audiences, and the live model's id embedding and features for them. This module clears all of that in the worker that serves the
DELETE; other workers stop serving the person at once (the store no longer knows them) and drop
their cached history on the next request for that id, and every model retrained afterwards never
saw them (docs/privacy.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from thaw.serving.audience import Audience
    from thaw.serving.engine import Engine


def forget_user(engine: Engine, user_id: str, audience: Audience | None = None) -> bool:
    """Delete `user_id` from the store and from this worker's memory; False if the store did not know them.

    `audience` is the app's cache of every user's vector (GET /explore/items/{id}/audience), if built.
    """
    # Buffered impressions go to the store first, so the delete removes them too (otherwise a
    # person re-created under the same id before the next flush would inherit them).
    engine.impressions.flush()
    if not engine.store.delete_user(user_id):
        return False
    engine.people.cache.forget(user_id)
    engine.generated.forget_user(user_id)
    state = engine.model_state
    if state is not None:
        state.user_vectors.forget(user_id)
        state.user_ranks.forget(user_id)  # the list ranked for their vector
    forget = getattr(state.model, "forget_users", None) if state is not None else None
    if forget is not None:
        forget([user_id])
    if audience is not None:
        audience.forget()
    engine.mark_counts_stale()
    return True
