"""Response bodies of the dashboard's read-only endpoints (GET /explore/...)."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class GrowthOut(BaseModel):
    """Cumulative counts at evenly spaced moments from the first to the last activity."""

    times: list[datetime]
    users: list[int] = Field(description="users created or first active up to each moment")
    items: list[int] = Field(description="items created or first interacted with up to each moment")
    events: list[int] = Field(description="real (not generated) events up to each moment")


class OverviewOut(BaseModel):
    """Totals, how they grew, and what is being served."""

    users: int
    items: int
    events: int
    events_by_type: dict[str, int]
    generated_events: int
    live_items: int = Field(description="items in the serving index")
    model_version: str
    auth: Literal["open", "keys"]
    growth: GrowthOut
    computed_at: datetime = Field(description="when the growth series was computed (cached briefly)")


class MetricOut(BaseModel):
    """A metric over folds, as `thaw evaluate --json` writes it (null where not finite)."""

    mean: float | None
    std: float | None
    per_fold: list[float | None]


class ModelResultOut(BaseModel):
    """One model's row of an evaluation report."""

    model: str
    metrics: dict[str, MetricOut]
    fit_seconds: float | None


class ReportOut(BaseModel):
    """One `thaw evaluate --json` report found beside the live model."""

    file: str = Field(description="path relative to the live model's directory")
    scenario: str
    folds: int
    dataset: str
    encoder: str
    primary_ranking: str
    results: list[ModelResultOut]


class ReportErrorOut(BaseModel):
    """A report file that could not be read."""

    file: str
    error: str


class EvaluationOut(BaseModel):
    """The live model's metrics and the evaluation reports stored with it."""

    model_version: str
    origin: str
    created_at: datetime | None
    live_metrics: dict[str, float] = Field(description="the metrics GET /admin/models reports for the live version")
    directory: str | None = Field(description="name of the live model's directory, when it has one")
    live_model: str | None = Field(
        None, description="the live model's method as reports name it (their `model` column, e.g. thaw); null without a model"
    )
    reports: list[ReportOut]
    errors: list[ReportErrorOut]


class ItemHitOut(BaseModel):
    """An item found by title or id."""

    id: str
    title: str
    interactions: float = Field(description="weighted interaction count (popularity)")


class ItemSearchOut(BaseModel):
    """Items whose title contains every word of the query (or whose id equals it)."""

    query: str
    matches: int
    items: list[ItemHitOut]


class AttributeOut(BaseModel):
    """The values one attribute takes."""

    name: str
    kind: Literal["categorical", "list", "numeric"]
    count: int = Field(description="rows that have it")
    distinct: int
    values: list[tuple[str, int]] = Field(description="most frequent values with their counts")
    minimum: float | None
    maximum: float | None


class AttributesOut(BaseModel):
    """Attributes of users or items, most common first."""

    of: Literal["users", "items"]
    rows_read: int
    attributes: list[AttributeOut]


class HistoryEventOut(BaseModel):
    """One event of a user's history."""

    item: str
    title: str
    type: str
    value: float | None
    timestamp: datetime


class UserHistoryOut(BaseModel):
    """A stored user and their most recent events, newest first."""

    id: str
    attributes: dict[str, Any]
    text: str | None
    n_events: int
    events: list[HistoryEventOut]


class InteractionOut(BaseModel):
    """One user's interactions with an item."""

    user: str
    events: int
    types: list[str]
    last_value: float | None
    last_timestamp: datetime


class ItemUsersOut(BaseModel):
    """Users who interacted with an item, most recent first."""

    item: str
    n_users: int
    n_events: int
    users: list[InteractionOut]


class AudienceMemberOut(BaseModel):
    """A user the item would be recommended to."""

    user: str
    score: float
    rank: int = Field(description="the item's position among everything this user has not seen, in this space")
    n_history: int


class AudienceOut(BaseModel):
    """Top users by score against the item's vector; users who already interacted with it are left out."""

    item: str
    source: Literal["model", "content"]
    model_version: str
    users_scored: int
    users_total: int
    age_seconds: float = Field(description="age of the kept user vectors (rebuilt every 30 s or on a model swap)")
    users: list[AudienceMemberOut]
