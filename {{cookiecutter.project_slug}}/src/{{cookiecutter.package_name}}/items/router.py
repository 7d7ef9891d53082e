"""``/api/v1/items``: create, read through the cache (cache-aside), list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from starlette.responses import Response

from ..errors import PROBLEM_RESPONSES, problem_response
from ..state import StateDep
from .processing import ItemProcessing
from .repository import ItemRepository
from .schemas import ItemCreate, ItemOut, ItemPage

router = APIRouter(prefix="/api/v1/items", tags=["items"], responses=PROBLEM_RESPONSES)

ItemId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The item's id")]


def cache_key(item_id: int) -> str:
    return f"items:{item_id}"


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ItemOut,
    responses={400: problem_response("The body is not valid UTF-8 JSON")},
)
async def create_item(data: ItemCreate, state: StateDep) -> Response:
    # Cache-aside: the first read fills the cache, so a write costs no cache round trip.
    item = await ItemRepository(state.database, state.get(ItemProcessing)).create(data)
    body = ItemOut.model_validate(item).model_dump_json().encode()
    return Response(body, status_code=status.HTTP_201_CREATED, media_type="application/json")


@router.get("/{item_id}", response_model=ItemOut, responses={404: problem_response("No item with this id")})
async def get_item(item_id: ItemId, state: StateDep) -> Response:
    # The state's cache rather than a CacheDep: one dependency less to solve on the hottest route.
    async def load() -> bytes | None:
        item = await ItemRepository(state.database).get(item_id)
        return None if item is None else ItemOut.model_validate(item).model_dump_json().encode()

    body = await state.cache.get_or_load(cache_key(item_id), load)
    if body is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No item with id {item_id}.")
    return Response(body, media_type="application/json")


@router.get("", response_model=ItemPage)
async def list_items(
    state: StateDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> ItemPage:
    items = await ItemRepository(state.database).page(limit=limit, offset=offset)
    return ItemPage(items=[ItemOut.model_validate(item) for item in items], limit=limit, offset=offset)
