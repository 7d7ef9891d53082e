from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, StringConstraints, WithJsonSchema


def _storable(value: str) -> str:
    """PostgreSQL text holds no lone surrogates: refuse them here (422), not in the database (500)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 text") from None
    return value


NO_NUL = r"^[^\x00]*$"  # PostgreSQL text holds no NUL; a pattern puts the rule in the OpenAPI schema too
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_NUL),
    AfterValidator(_storable),
]
Description = Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL), AfterValidator(_storable)]


def _utc(value: datetime) -> datetime:
    """SQLite gives naive timestamps (its CURRENT_TIMESTAMP is UTC), PostgreSQL aware ones: both become UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


# One format on every backend: 2026-12-02T02:40:41.407772Z.
Timestamp = Annotated[
    datetime,
    AfterValidator(_utc),
    PlainSerializer(_iso, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description | None = None


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    created_at: Timestamp
    processed_at: Timestamp | None


class ItemPage(BaseModel):
    items: list[ItemOut]
    limit: int = Field(ge=1)
    offset: int = Field(ge=0)
