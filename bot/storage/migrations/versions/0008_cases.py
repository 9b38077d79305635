"""Confidential contact requests: cases, their sealed messages, threads of staff destinations in the outbox.

Revision ID: 0008_cases
Revises: 0006_bulletins
Create Date: 2026-12-02 02:08:35.983023
"""

import sqlalchemy as sa
from alembic import op

revision = '0008_cases'
down_revision = '0006_bulletins'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sa.String(length=12), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=True),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('topic', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('waiting_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_person_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_staff_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claim_reminded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answer_reminded_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_cases_participant_id_participants'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cases')),
    sa.UniqueConstraint('reference', name=op.f('uq_cases_reference'))
    )
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cases_closed_at'), ['closed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_participant_id'), ['participant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_status'), ['status'], unique=False)

    op.create_table('case_messages',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('author', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('staff_key_id', sa.String(length=16), nullable=False),
    sa.Column('body_enc', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_messages_case_id_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_messages')),
    sa.UniqueConstraint('case_id', 'seq', name=op.f('uq_case_messages_case_id'))
    )
    with op.batch_alter_table('case_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_messages_case_id'), ['case_id'], unique=False)

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('thread', sa.String(length=64), nullable=True))

    op.create_table('outbox_threads',
    sa.Column('staff_destination', sa.String(length=32), nullable=False),
    sa.Column('thread', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=255), nullable=False),
    sa.Column('root_id', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('staff_destination', 'thread', name=op.f('pk_outbox_threads'))
    )
    with op.batch_alter_table('outbox_threads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_threads_root_id'), ['root_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox_threads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_threads_root_id'))
    op.drop_table('outbox_threads')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('thread')

    with op.batch_alter_table('case_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_messages_case_id'))

    op.drop_table('case_messages')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cases_status'))
        batch_op.drop_index(batch_op.f('ix_cases_participant_id'))
        batch_op.drop_index(batch_op.f('ix_cases_closed_at'))

    op.drop_table('cases')
