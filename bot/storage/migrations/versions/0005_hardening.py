"""Hardening: the key check that binds the database to its key file.

Revision ID: 0005_hardening
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_hardening"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_check",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hmac_check", sa.String(length=64), nullable=False),
        sa.Column("master_check", sa.LargeBinary(), nullable=False),
        sa.Column("key_ids", sa.String(length=255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_check")),
    )


def downgrade() -> None:
    op.drop_table("key_check")
