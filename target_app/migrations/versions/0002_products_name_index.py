"""Index products.name: the fix of the slow-query scenario, shipped as a migration.

Built CONCURRENTLY on PostgreSQL (target_app/online_ddl.py says why): on a
table of a million rows a plain CREATE INDEX would make every write of a
product wait for the whole build. The downgrade drops it CONCURRENTLY too.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from target_app import online_ddl

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEX = "ix_products_name"


def upgrade() -> None:
    online_ddl.create_index(INDEX, "products", ["name"])


def downgrade() -> None:
    online_ddl.drop_index(INDEX, "products")
