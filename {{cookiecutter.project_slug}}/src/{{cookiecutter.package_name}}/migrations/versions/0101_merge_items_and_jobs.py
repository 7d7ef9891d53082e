"""Join the items' migrations and the job queue's into one head.

Revision ID: 0101
Revises: 0002, jobs_0001
Create Date: 2026-01-03
"""

from collections.abc import Sequence

revision: str = "0101"
down_revision: str | Sequence[str] | None = ("0002", "jobs_0001")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
