"""Item storage. Every call goes through the database's guard; reads retry, writes don't."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..resilience import Dependency
from .models import Item
from .schemas import ItemCreate


class ItemRepository:
    def __init__(self, session: AsyncSession, guard: Dependency) -> None:
        self.session = session
        self.guard = guard
        self._failed = False

    async def get(self, item_id: int) -> Item | None:
        return await self.guard.call(self._get, item_id, idempotent=True)

    async def page(self, *, limit: int, offset: int) -> list[Item]:
        return await self.guard.call(self._page, limit, offset, idempotent=True)

    async def create(self, data: ItemCreate) -> Item:
        return await self.guard.call(self._create, data)

    async def _get(self, item_id: int) -> Item | None:
        async with self._clean_on_error():
            return await self.session.get(Item, item_id)

    async def _page(self, limit: int, offset: int) -> list[Item]:
        async with self._clean_on_error():
            rows = await self.session.scalars(select(Item).order_by(Item.id).limit(limit).offset(offset))
            return list(rows)

    async def _create(self, data: ItemCreate) -> Item:
        async with self._clean_on_error():
            item: Item = (await self.session.scalars(insert(Item).values(**data.model_dump()).returning(Item))).one()
            await self.session.commit()
            return item

    @contextlib.asynccontextmanager
    async def _clean_on_error(self) -> AsyncIterator[None]:
        """Roll back a failed attempt at the start of the next one, so that a retry gets a fresh connection.

        Not at once: on a hung server the rollback would hang too, and the guard must see the failure first.
        """
        if self._failed:
            self._failed = False
            with contextlib.suppress(Exception):
                await self.session.rollback()
        try:
            yield
        except Exception:
            self._failed = True
            raise
