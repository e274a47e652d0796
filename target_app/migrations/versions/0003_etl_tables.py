"""ETL jobs and their target: the etl-in-memory scenario's tables.

`etl_jobs` is one row per job: its scope (products up to `until_product_id`),
its checkpoint (`last_product_id`, the last product whose snapshot is
committed) and its outcome. `product_snapshots` is the job's target. It has
no unique key on (job_id, product_id), on purpose: the scenario measures
the duplicates a retry without a checkpoint leaves behind.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "etl_jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(60), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="running"),
        sa.Column("until_product_id", sa.Integer, nullable=False),
        sa.Column("rows_expected", sa.Integer, nullable=False),
        sa.Column("last_product_id", sa.Integer, nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("started_at", sa.DateTime, nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", sa.DateTime),
    )
    op.create_table(
        "product_snapshots",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("job_id", sa.Integer, nullable=False),
        sa.Column("product_id", sa.Integer, nullable=False),
        sa.Column("sku", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("category", sa.String(60), nullable=False),
        sa.Column("price_with_tax", sa.Numeric(10, 2), nullable=False),
        sa.Column("in_stock", sa.Boolean, nullable=False),
    )
    op.create_index(
        "ix_product_snapshots_job_product", "product_snapshots", ["job_id", "product_id"]
    )


def downgrade() -> None:
    op.drop_table("product_snapshots")
    op.drop_table("etl_jobs")
