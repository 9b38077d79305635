"""Hardening: the key check that binds the database to its key file; addresses still to forget;
the owner of each handled-event record.

Revision ID: 0005_hardening
Revises: 0009_survey_ballots
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_hardening"
down_revision = "0009_survey_ballots"
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
    op.create_table(
        "forget_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=32), nullable=False),
        sa.Column("address_enc", sa.LargeBinary(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forget_requests")),
        sa.UniqueConstraint("ref", name=op.f("uq_forget_requests_ref")),
    )
    with op.batch_alter_table("forget_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_forget_requests_created_at"), ["created_at"], unique=False)

    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_processed_events_owner"), ["owner"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_processed_events_owner"))
        batch_op.drop_column("owner")
    with op.batch_alter_table("forget_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_forget_requests_created_at"))
    op.drop_table("forget_requests")
    op.drop_table("key_check")
