from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints


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


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description | None = None


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    created_at: datetime


class ItemPage(BaseModel):
    items: list[ItemOut]
    limit: int = Field(ge=1)
    offset: int = Field(ge=0)
