"""Delivery engine: staff destinations, per-recipient queues, priorities, not_before, lease tokens;
payloads of finished rows erased.

Revision ID: 0004_delivery
Revises: 0003
Create Date: 2026-12-01 02:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0004_delivery'
down_revision = '0003'
branch_labels = None
depends_on = None

_FINAL = "('sent', 'failed', 'unreachable')"


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('staff_destination', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('queue', sa.String(length=40), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('priority', sa.SmallInteger(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=False, server_default='en'))
        batch_op.add_column(sa.Column('not_before', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('lease_token', sa.String(length=32), nullable=True))
        batch_op.alter_column('participant_id', existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column('payload_enc', existing_type=sa.LargeBinary(), nullable=True)
        batch_op.drop_index('ix_outbox_due')
    op.execute("UPDATE outbox SET queue = 'p:' || CAST(participant_id AS VARCHAR(20))")
    op.execute("UPDATE outbox SET priority = 0 WHERE kind = 'reply'")
    op.execute("UPDATE outbox SET priority = 2 WHERE kind = 'survey.invitation'")
    op.execute(f"UPDATE outbox SET payload_enc = NULL WHERE status IN {_FINAL}")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('queue', existing_type=sa.String(length=40), server_default=None)
        batch_op.alter_column('priority', existing_type=sa.SmallInteger(), server_default=None)
        batch_op.alter_column('language', existing_type=sa.String(length=8), server_default=None)
        batch_op.create_index('ix_outbox_due', ['platform', 'status', 'priority', 'next_attempt_at', 'id'], unique=False)
        batch_op.create_index('ix_outbox_queue', ['platform', 'queue', 'status', 'id'], unique=False)
        batch_op.create_check_constraint(
            op.f('ck_outbox_one_recipient'), '(participant_id IS NULL) <> (staff_destination IS NULL)'
        )


def downgrade() -> None:
    # Rows for staff destinations and rows whose payload was erased cannot go back.
    op.execute("DELETE FROM outbox WHERE participant_id IS NULL OR payload_enc IS NULL")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_outbox_one_recipient'), type_='check')
        batch_op.drop_index('ix_outbox_queue')
        batch_op.drop_index('ix_outbox_due')
        batch_op.create_index('ix_outbox_due', ['platform', 'status', 'next_attempt_at'], unique=False)
        batch_op.alter_column('payload_enc', existing_type=sa.LargeBinary(), nullable=False)
        batch_op.alter_column('participant_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('lease_token')
        batch_op.drop_column('not_before')
        batch_op.drop_column('language')
        batch_op.drop_column('priority')
        batch_op.drop_column('queue')
        batch_op.drop_column('staff_destination')
