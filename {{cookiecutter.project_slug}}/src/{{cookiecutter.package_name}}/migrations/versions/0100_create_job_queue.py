"""Create the job queue: pgqueuer's tables, types, indexes and the trigger that wakes the workers.

The statements are pgqueuer's own, rendered by the installed release; a release that changes them comes with
a migration of its own (``pgq upgrade`` prints what it would apply).

Revision ID: jobs_0001
Revises:
Create Date: 2026-01-01
"""

from collections.abc import Sequence

from alembic import op
from pgqueuer.adapters.persistence.qb import QueryBuilderEnvironment
from sqlalchemy.util import await_only

revision: str = "jobs_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("jobs",)
depends_on: str | Sequence[str] | None = None


def _execute_script(sql: str) -> None:
    # Several statements, some with $$ bodies: asyncpg runs them as one simple query, which a prepared
    # statement (what SQLAlchemy's op.execute makes) cannot be.
    connection = op.get_bind().connection.driver_connection
    await_only(connection.execute(sql))  # type: ignore[union-attr]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # the embedded SQLite keeps no queue: the server runs its jobs in-process
    _execute_script(QueryBuilderEnvironment().build_install_query(create_schema=False))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _execute_script(QueryBuilderEnvironment().build_uninstall_query())
