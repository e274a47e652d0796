"""Users get a password hash: logging in (POST /sessions), the sessions scenario's route.

Nullable: a user without one cannot log in (an account made by an import, say).
The lab's seed gives every seeded user the same password (target_app/
passwords.py), hashed with Argon2id.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("password_hash", sa.String(255), nullable=True))


def downgrade() -> None:
    op.drop_column("users", "password_hash")
