"""Alembic environment: runs on the connection that ``migrations.upgrade`` hands over."""

from alembic import context

from {{ cookiecutter.package_name }}.db import Base
from {{ cookiecutter.package_name }}.items import models  # noqa: F401 - registers the tables

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
