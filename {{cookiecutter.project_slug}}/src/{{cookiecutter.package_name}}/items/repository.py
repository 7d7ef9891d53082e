"""Item storage. Every call goes through the database's guard, on a session of its own; reads retry, writes don't."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..db import attempt_session
from ..resilience import Dependency
from .models import Item
from .schemas import ItemCreate


class ItemRepository:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], guard: Dependency) -> None:
        self.sessions = sessions
        self.guard = guard

    async def get(self, item_id: int) -> Item | None:
        return await self.guard.call(self._get, item_id, idempotent=True)

    async def page(self, *, limit: int, offset: int) -> list[Item]:
        return await self.guard.call(self._page, limit, offset, idempotent=True)

    async def create(self, data: ItemCreate) -> Item:
        return await self.guard.call(self._create, data)

    async def _get(self, item_id: int) -> Item | None:
        async with attempt_session(self.sessions) as session:
            return await session.get(Item, item_id)

    async def _page(self, limit: int, offset: int) -> list[Item]:
        async with attempt_session(self.sessions) as session:
            return list(await session.scalars(select(Item).order_by(Item.id).limit(limit).offset(offset)))

    async def _create(self, data: ItemCreate) -> Item:
        async with attempt_session(self.sessions) as session:
            item: Item = (await session.scalars(insert(Item).values(**data.model_dump()).returning(Item))).one()
            await session.commit()
            return item
