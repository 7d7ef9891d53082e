"""Item storage. Every call goes through the database's guard, on a session of its own; reads retry, writes don't."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db import Database
from .models import Item
from .processing import ItemProcessing
from .schemas import ItemCreate


class ItemRepository:
    def __init__(self, database: Database, processing: ItemProcessing | None = None) -> None:
        self.database = database
        self.processing = processing

    async def get(self, item_id: int) -> Item | None:
        async def get(session: AsyncSession) -> Item | None:
            return await session.get(Item, item_id)

        return await self.database.run(get, idempotent=True)

    async def page(self, *, limit: int, offset: int) -> list[Item]:
        async def page(session: AsyncSession) -> list[Item]:
            return list(await session.scalars(select(Item).order_by(Item.id).limit(limit).offset(offset)))

        return await self.database.run(page, idempotent=True)

    async def create(self, data: ItemCreate) -> Item:
        async def create(session: AsyncSession) -> Item:
            item: Item = (await session.scalars(insert(Item).values(**data.model_dump()).returning(Item))).one()
            if self.processing is not None:
                item.processed_at = await self.processing.created(session, item.id)  # one transaction for both
            await session.commit()
            return item

        return await self.database.run(create)
