"""Request and response bodies of the HTTP API (pydantic); never the ORM classes.

Limits in these schemas are the defaults of `LimitsConfig`; a server configured with lower
limits enforces them at run time with the same 422 error shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from thaw.data.records import EVENT_TYPES, MAX_ID_LENGTH
from thaw.serving.config import LimitsConfig

_LIMITS = LimitsConfig()

Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[^\x00-\x1f\x7f]+$"),
]
"""An external id: 1-255 characters, no control characters."""

Text = Annotated[str, StringConstraints(max_length=_LIMITS.max_text_chars, pattern=r"^[^\x00]*$")]
Scalar = Annotated[str, StringConstraints(max_length=1000, pattern=r"^[^\x00]*$")] | bool | int | float | None
AttributeValue = Scalar | Annotated[list[Scalar], Field(max_length=100)]
Attributes = Annotated[dict[Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00]*$")], AttributeValue], Field(max_length=100)]
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ItemIn(_In):
    """A catalogue entry as a client sends it."""

    id: Id
    title: Annotated[str, StringConstraints(max_length=10_000, pattern=r"^[^\x00]*$")] = ""
    text: Text | None = None
    attributes: Attributes = Field(default_factory=dict)

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={"examples": [{"id": "1", "title": "Toy Story (1995)", "text": "Animation, Comedy", "attributes": {"year": 1995}}]},
    )


class ItemPatch(_In):
    """Fields of an item to change; absent fields stay as they are."""

    title: Annotated[str, StringConstraints(max_length=10_000, pattern=r"^[^\x00]*$")] | None = None
    text: Text | None = None
    attributes: Attributes | None = None


class ItemOut(BaseModel):
    """A stored item and its exposure so far."""

    id: str
    title: str
    text: str | None
    attributes: dict[str, Any]
    created_at: datetime | None
    impressions: int = Field(description="times shown in a recommendation list")
    interactions: float = Field(description="weighted interaction count (popularity)")


class UserIn(_In):
    """A person as a client sends them."""

    id: Id
    attributes: Attributes = Field(default_factory=dict)
    text: Text | None = None


class UserOut(BaseModel):
    """A stored user."""

    id: str
    attributes: dict[str, Any]
    text: str | None
    created_at: datetime | None
    n_events: int


class EventIn(_In):
    """One interaction; a retry with the same idempotency_key is stored once."""

    user: Id
    item: Id
    type: EventType
    value: float | None = Field(None, description="e.g. the rating for type=rating")
    text: Text | None = None
    timestamp: datetime | None = Field(None, description="default: when the server receives it")
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")] | None = None


class WriteOut(BaseModel):
    """What a batch write did."""

    inserted: int
    updated: int = 0
    unchanged: int = Field(0, description="identical rows, or events whose idempotency key was already stored")


class RatedItemIn(_In):
    """One item a new person rated: weighed like a stored `rating` event with this value."""

    item: Id
    value: float = Field(
        description=(
            "the rating; it must lie in the server's rating scale: 1 to the configured max_rating "
            "(1-5 by default), widened to the lowest and highest rating the store holds"
        ),
        examples=[4],
    )


class NewUserIn(_In):
    """Someone not yet stored: attributes, a few liked or rated items, text (the onboarding path)."""

    attributes: Attributes = Field(default_factory=dict)
    liked_items: Annotated[list[Id], Field(max_length=_LIMITS.max_liked_items)] = Field(
        default_factory=list, description="items the person likes; each counts as a purchase event"
    )
    rated_items: Annotated[list[RatedItemIn], Field(max_length=_LIMITS.max_liked_items)] = Field(
        default_factory=list,
        description=(
            "items the person rated, each at most once; each counts as a rating event with its value, "
            "so a low rating is a weaker signal than a high one and much weaker than a like "
            f"(liked and rated items together: at most {_LIMITS.max_liked_items})"
        ),
    )
    text: Text | None = Field(None, description="optional free text about the person")
    k: int = Field(10, ge=1, le=_LIMITS.max_k)
    explain: bool = False
    exclude_liked: bool = Field(True, description="leave the liked and rated items out of the list")

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {
                    "attributes": {"age": 25, "gender": "F"},
                    "liked_items": ["50"],
                    "rated_items": [{"item": "181", "value": 5}, {"item": "172", "value": 2}],
                    "k": 5,
                    "explain": True,
                }
            ]
        },
    )


class ReasonOut(BaseModel):
    """Why an item was served."""

    items: list[str] = Field(description="history items that drove the score, strongest first")
    attributes: dict[str, Any] = Field(description="attributes that drove the score")
    detail: str


class RecommendationOut(BaseModel):
    """One recommended item."""

    id: str
    title: str
    score: float = Field(description="in the serving source's own scale (higher is better)")
    source: Literal["model", "content", "popularity", "exploration"]
    reason: ReasonOut | None = None


class RecommendationsOut(BaseModel):
    """A list of recommendations."""

    user: str | None = Field(description="the stored user, or null for POST /recommendations")
    items: list[RecommendationOut]
    request_id: str = Field(description="impressions of this list are logged under this id")
    model_version: str


class SimilarOut(BaseModel):
    """Items similar to one item."""

    item: str
    items: list[RecommendationOut]
    model_version: str


class HealthOut(BaseModel):
    """Liveness and what is being served."""

    status: Literal["ok"]
    items: int
    model_version: str
    auth: Literal["open", "keys"]
    uptime_seconds: float
    warming_up: bool = Field(
        False, description="stored users' model vectors are still being computed ahead (answers are right, slower)"
    )
    worker: int = Field(description="process id of the worker that answered (--workers N runs N of them)")


class ModelVersionOut(BaseModel):
    """A model version known to this server."""

    version: str
    status: Literal["live", "retired", "training", "rejected", "failed"]
    created_at: datetime
    origin: Literal["content", "checkpoint", "retrain"]
    path: str | None
    metrics: dict[str, float]
    detail: str
    progress: dict[str, Any]


class ErrorOut(BaseModel):
    """An error: a message, or a list of {loc, msg, type} naming the field at fault."""

    detail: str | list[dict[str, Any]]
