"""Alembic environment: runs on the connection that ``migrations.upgrade`` hands over."""

from alembic import context

from {{ cookiecutter.package_name }} import features
from {{ cookiecutter.package_name }}.db import Base

features.models()  # imports the modules that declare the parts' tables (``Feature.models``)

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
