"""Item storage. Every call goes through the database's guard; reads retry, writes don't.

Each attempt gets its own session, so a retry starts on a fresh connection. A connection that failed by
the infrastructure's fault is invalidated rather than rolled back: on a hung server the rollback would
hang too, and the guard must see the failure at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..resilience import Dependency, is_failure
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
        async with self._session() as session:
            return await session.get(Item, item_id)

    async def _page(self, limit: int, offset: int) -> list[Item]:
        async with self._session() as session:
            return list(await session.scalars(select(Item).order_by(Item.id).limit(limit).offset(offset)))

    async def _create(self, data: ItemCreate) -> Item:
        async with self._session() as session:
            item: Item = (await session.scalars(insert(Item).values(**data.model_dump()).returning(Item))).one()
            await session.commit()
            return item

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        session = self.sessions()
        try:
            yield session
        except Exception as exc:
            if is_failure(exc):
                await session.invalidate()
            else:
                await session.close()
            raise
        else:
            await session.close()
