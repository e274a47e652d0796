"""products.discontinued_at: the schema change of the release bad-deploy deploys.

An expand step, on purpose: a nullable column the live release's code does not
know, so that release runs on the new schema during a blue/green switch and after
a rollback of the code. Its downgrade (dropping the column) is what the gated
procedure runs after a refused or rolled-back release, and what
tests/integration/test_migrations.py takes down and up again with every other
migration. No index with it: building one here would lock the table's writes
(slow-query's lesson) on a migration whose point is to be harmless.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _lock_briefly_or_fail() -> None:
    """Under traffic, ALTER TABLE waits for the table's lock, and every query that comes
    after waits behind it: give up after 2 s (and retry the deploy) rather than stall
    the live release's queries on products for as long as its longest one runs."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SET LOCAL lock_timeout = '2s'")


def upgrade() -> None:
    _lock_briefly_or_fail()
    # Nullable, no default: PostgreSQL adds it to the catalogue without a rewrite.
    op.add_column("products", sa.Column("discontinued_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    _lock_briefly_or_fail()
    op.drop_column("products", "discontinued_at")
