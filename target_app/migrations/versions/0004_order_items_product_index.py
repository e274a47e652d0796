"""Index order_items.product_id: a foreign key column with no index.

Every DELETE (or key UPDATE) of a product made PostgreSQL check order_items
for rows that still point at it, with a sequential scan of order_items per
product: removing the 20,000 products an import added took minutes (the
row-by-row-insert scenario's clean-up). With the index, well under a second.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_order_items_product_id", "order_items", ["product_id"])


def downgrade() -> None:
    op.drop_index("ix_order_items_product_id", table_name="order_items")
