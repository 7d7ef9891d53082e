"""The example API: ``/api/v1/items``, stored in the database and read through the cache."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..items import models
from ..items.processing import ItemProcessing
from ..items.router import router
from . import Assembly, Feature


@asynccontextmanager
async def lifespan(assembly: Assembly) -> AsyncIterator[None]:
    assembly.provide(ItemProcessing, ItemProcessing())  # another part may defer the processing
    yield


feature = Feature("items", routers=[router], models=[models], lifespan=lifespan)
