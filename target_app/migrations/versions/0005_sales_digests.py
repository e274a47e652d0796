"""The periodic sales digest's sends: the in-process-scheduler scenario's table.

One row per digest sent: which job, which tick of its schedule, the period it
covers, what it said and which process sent it. No unique key on (job, tick),
on purpose: the scenario counts the ticks that were sent more than once (one
per app worker, when every worker runs the scheduler). The index serves that
count and the digest's own look-ups.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sales_digests",
        # BIGINT on PostgreSQL; SQLite's autoincrement needs its INTEGER.
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True
        ),
        sa.Column("job", sa.String(60), nullable=False),
        sa.Column("tick", sa.BigInteger, nullable=False),
        sa.Column("period_start", sa.DateTime, nullable=False),
        sa.Column("period_end", sa.DateTime, nullable=False),
        sa.Column("orders", sa.Integer, nullable=False),
        sa.Column("revenue", sa.Numeric(14, 2), nullable=False),
        sa.Column("sent_by", sa.String(80), nullable=False),
        sa.Column("sent_at", sa.DateTime, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_sales_digests_job_tick", "sales_digests", ["job", "tick"])


def downgrade() -> None:
    op.drop_table("sales_digests")
