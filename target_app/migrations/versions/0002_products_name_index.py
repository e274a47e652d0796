"""Index products.name: the fix of the slow-query scenario, shipped as a migration.

Built with CREATE INDEX CONCURRENTLY on PostgreSQL: a plain CREATE INDEX holds a
SHARE lock on products for the whole build, and on a table of a million rows
every INSERT, UPDATE and DELETE of a product waits that long. CONCURRENTLY takes
a SHARE UPDATE EXCLUSIVE lock instead (writes go on; it scans the table twice
and waits for the transactions already running), and cannot run inside a
transaction: hence the autocommit block, which commits the migration's
transaction first. A build that fails (a deadlock, a cancel) leaves an INVALID
index behind, which the upgrade drops before building again.

The downgrade drops it the same way (DROP INDEX CONCURRENTLY): a plain DROP
INDEX takes an ACCESS EXCLUSIVE lock, which queues every read behind any
running query. SQLite has neither form nor the locks: a plain build there.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op
from sqlalchemy import text

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEX = "ix_products_name"


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _postgresql():
        op.create_index(INDEX, "products", ["name"])
        return
    with op.get_context().autocommit_block():
        invalid = op.get_bind().scalar(
            text(
                "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = :name AND NOT i.indisvalid"
            ),
            {"name": INDEX},
        )
        if invalid:  # what an interrupted concurrent build leaves: not used, still maintained
            op.drop_index(INDEX, table_name="products", postgresql_concurrently=True)
        op.create_index(INDEX, "products", ["name"], postgresql_concurrently=True)


def downgrade() -> None:
    if not _postgresql():
        op.drop_index(INDEX, table_name="products")
        return
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, table_name="products", postgresql_concurrently=True)
