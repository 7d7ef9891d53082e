"""What a new item needs once written: its processing, which stamps ``processed_at``.

Done inside the create's own transaction unless a part of the service defers it (to run once the create has
committed): ``ItemProcessing.defer`` is that part's hook. ``process`` is idempotent, as
work that may run more than once must be: a second run finds the stamp and changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession

from .models import Item

Defer = Callable[[AsyncSession, int], Awaitable[None]]


async def process(session: AsyncSession, item_id: int) -> datetime | None:
    """Stamp the item as processed and return the stamp; None when it was already (or is gone)."""
    stamp = (
        update(Item)
        .where(Item.id == item_id, Item.processed_at.is_(None))
        .values(processed_at=func.now())
        .returning(Item.processed_at)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(stamp)).scalar_one_or_none()


class ItemProcessing:
    def __init__(self) -> None:
        self.defer: Defer | None = None

    async def created(self, session: AsyncSession, item_id: int) -> datetime | None:
        """In the create's transaction: process the item now (its stamp), or hand it to the part that defers it."""
        if self.defer is not None:
            await self.defer(session, item_id)
            return None
        return await process(session, item_id)
