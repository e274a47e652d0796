"""The transactional outbox: messages to other services, written with the change they announce.

`outbox_messages` holds what the shop still has to tell another service, written
in the transaction of the change it belongs to, so that neither exists without
the other (microservice-cascade's fixed order placement: the order and "reserve
its stock"). A relay delivers each due message (`next_attempt_at`), deletes it
in the transaction that applies the answer, or puts it off (`attempts`). The
index serves the relay's look-up of due messages.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("order_id", sa.Integer, sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("topic", sa.String(40), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
    )  # fmt: skip
    op.create_index("ix_outbox_messages_due", "outbox_messages", ["topic", "next_attempt_at"])
    op.create_index("ix_outbox_messages_order_id", "outbox_messages", ["order_id"])


def downgrade() -> None:
    op.drop_table("outbox_messages")
