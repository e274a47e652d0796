"""Index order_items.product_id: a foreign key column with no index.

Every DELETE (or key UPDATE) of a product made PostgreSQL check order_items
for rows that still point at it, with a sequential scan of order_items per
product: removing the 20,000 products an import added took minutes (the
row-by-row-insert scenario's clean-up). With the index, well under a second.
Built CONCURRENTLY, as every index of the shop is (target_app/online_ddl.py):
orders keep being written while it builds.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from target_app import online_ddl

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEX = "ix_order_items_product_id"


def upgrade() -> None:
    online_ddl.create_index(INDEX, "order_items", ["product_id"])


def downgrade() -> None:
    online_ddl.drop_index(INDEX, "order_items")
