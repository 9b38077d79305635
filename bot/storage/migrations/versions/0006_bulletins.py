"""Bulletins: versions with their approval, sends with their audience and schedule, recipients,
subscriptions and the staff notices that follow a send.

Revision ID: 0006_bulletins
Revises: 0007_checkins
Create Date: 2026-12-02 02:43:20.011240
"""

import sqlalchemy as sa
from alembic import op

revision = '0006_bulletins'
down_revision = '0007_checkins'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('bulletins',
    sa.Column('id', sa.String(length=48), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bulletins'))
    )
    op.create_table('bulletin_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bulletin_id', sa.String(length=48), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('languages', sa.String(length=32), nullable=False),
    sa.Column('content_enc', sa.LargeBinary(), nullable=False),
    sa.Column('author', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('approved_by', sa.String(length=64), nullable=True),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['bulletin_id'], ['bulletins.id'], name=op.f('fk_bulletin_versions_bulletin_id_bulletins'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bulletin_versions')),
    sa.UniqueConstraint('bulletin_id', 'number', name=op.f('uq_bulletin_versions_bulletin_id'))
    )
    with op.batch_alter_table('bulletin_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bulletin_versions_bulletin_id'), ['bulletin_id'], unique=False)

    op.create_table('bulletin_sends',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bulletin_id', sa.String(length=48), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=True),
    sa.Column('audience', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('requested_by', sa.String(length=64), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('timed', sa.Boolean(), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_by', sa.String(length=64), nullable=True),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.Column('reporter_lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['bulletin_id'], ['bulletins.id'], name=op.f('fk_bulletin_sends_bulletin_id_bulletins'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['bulletin_versions.id'], name=op.f('fk_bulletin_sends_version_id_bulletin_versions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bulletin_sends'))
    )
    with op.batch_alter_table('bulletin_sends', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bulletin_sends_bulletin_id'), ['bulletin_id'], unique=False)
        batch_op.create_index('ix_bulletin_sends_due', ['status', 'due_at'], unique=False)

    op.create_table('bulletin_subscriptions',
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('subscribed', sa.Boolean(), nullable=False),
    sa.Column('changed_on', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_bulletin_subscriptions_participant_id_participants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('participant_id', name=op.f('pk_bulletin_subscriptions'))
    )
    op.create_table('bulletin_notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('send_id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('token', sa.String(length=32), nullable=False),
    sa.Column('address_enc', sa.LargeBinary(), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('message_id', sa.String(length=255), nullable=True),
    sa.Column('shown', sa.String(length=64), nullable=True),
    sa.Column('edited_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('summary_sent', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['send_id'], ['bulletin_sends.id'], name=op.f('fk_bulletin_notices_send_id_bulletin_sends'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bulletin_notices')),
    sa.UniqueConstraint('token', name=op.f('uq_bulletin_notices_token'))
    )
    with op.batch_alter_table('bulletin_notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bulletin_notices_send_id'), ['send_id'], unique=False)

    op.create_table('bulletin_recipients',
    sa.Column('send_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('outbox_id', sa.Integer(), nullable=True),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('fallback', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_bulletin_recipients_participant_id_participants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['send_id'], ['bulletin_sends.id'], name=op.f('fk_bulletin_recipients_send_id_bulletin_sends'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('send_id', 'participant_id', name=op.f('pk_bulletin_recipients'))
    )
    with op.batch_alter_table('bulletin_recipients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bulletin_recipients_outbox_id'), ['outbox_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bulletin_recipients_participant_id'), ['participant_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('bulletin_recipients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bulletin_recipients_participant_id'))
        batch_op.drop_index(batch_op.f('ix_bulletin_recipients_outbox_id'))

    op.drop_table('bulletin_recipients')
    with op.batch_alter_table('bulletin_notices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bulletin_notices_send_id'))

    op.drop_table('bulletin_notices')
    op.drop_table('bulletin_subscriptions')
    with op.batch_alter_table('bulletin_sends', schema=None) as batch_op:
        batch_op.drop_index('ix_bulletin_sends_due')
        batch_op.drop_index(batch_op.f('ix_bulletin_sends_bulletin_id'))

    op.drop_table('bulletin_sends')
    with op.batch_alter_table('bulletin_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bulletin_versions_bulletin_id'))

    op.drop_table('bulletin_versions')
    op.drop_table('bulletins')
