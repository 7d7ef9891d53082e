"""The example API: ``/api/v1/items``, stored in the database and read through the cache."""

from ..items import models
from ..items.router import router
from . import Feature

feature = Feature("items", routers=[router], models=[models])
