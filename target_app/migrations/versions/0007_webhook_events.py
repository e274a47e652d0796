"""Payment webhooks: the receiver's inbox, and payments by provider reference.

`webhook_events` is the inbox of the sync-webhook scenario's fixed receiver:
one row per event id, written before the 202 (status `received`), and set to
`applied` by the consumer in the same transaction as the event's effect (its
payment row). Its primary key makes a redelivered event a no-op at both ends:
the receiver does not queue it twice, the consumer does not apply it twice.
The faulty, inline receiver does not use it. The index on
`payments.provider_ref` serves the look-up of an event's payment, and the
proof's count of payments per event (not unique: the faulty receiver applies
a redelivered event again, which is what the scenario counts).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        # No foreign key: the inbox records what arrived; applying checks the order.
        sa.Column("order_id", sa.Integer, nullable=True),
        sa.Column("received_at", sa.DateTime, nullable=False, server_default=sa.func.now()),
        sa.Column("applied_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_webhook_events_status", "webhook_events", ["status"])
    op.create_index("ix_payments_provider_ref", "payments", ["provider_ref"])


def downgrade() -> None:
    op.drop_index("ix_payments_provider_ref", table_name="payments")
    op.drop_table("webhook_events")
