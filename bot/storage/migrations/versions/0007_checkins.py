"""Check-ins with associations: contact persons, schedules, cycles, deliveries, answers, flags;
invitation codes that make a contact person.

Revision ID: 0007_checkins
Revises: 0004_delivery
Create Date: 2026-12-02 02:09:50.568728
"""

import sqlalchemy as sa
from alembic import op

revision = '0007_checkins'
down_revision = '0004_delivery'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('checkin_schedules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('template_id', sa.String(length=48), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('every_days', sa.Integer(), nullable=True),
    sa.Column('at_time', sa.String(length=5), nullable=True),
    sa.Column('anchor_on', sa.Date(), nullable=True),
    sa.Column('cron', sa.String(length=120), nullable=True),
    sa.Column('paused', sa.Boolean(), nullable=False),
    sa.Column('next_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_checkin_schedules_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkin_schedules')),
    sa.UniqueConstraint('organisation_id', name=op.f('uq_checkin_schedules_organisation_id'))
    )
    with op.batch_alter_table('checkin_schedules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkin_schedules_next_due_at'), ['next_due_at'], unique=False)

    op.create_table('checkin_cycles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('template_id', sa.String(length=48), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answered_by', sa.Integer(), nullable=True),
    sa.Column('language', sa.String(length=8), nullable=True),
    sa.Column('nothing_new', sa.Boolean(), nullable=False),
    sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['answered_by'], ['participants.id'], name=op.f('fk_checkin_cycles_answered_by_participants'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_checkin_cycles_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkin_cycles')),
    sa.UniqueConstraint('organisation_id', 'due_at', name='uq_checkin_cycles_organisation_due'),
    sa.UniqueConstraint('organisation_id', 'seq', name='uq_checkin_cycles_organisation_seq')
    )
    with op.batch_alter_table('checkin_cycles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkin_cycles_answered_by'), ['answered_by'], unique=False)
        batch_op.create_index('ix_checkin_cycles_open', ['status', 'opened_at'], unique=False)

    op.create_table('organisation_contacts',
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('since', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_organisation_contacts_organisation_id_organisations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_organisation_contacts_participant_id_participants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('organisation_id', 'participant_id', name=op.f('pk_organisation_contacts'))
    )
    with op.batch_alter_table('organisation_contacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_organisation_contacts_participant_id'), ['participant_id'], unique=False)

    op.create_table('checkin_answers',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('cycle_id', sa.Integer(), nullable=False),
    sa.Column('question_id', sa.String(length=48), nullable=False),
    sa.Column('option_id', sa.String(length=48), nullable=True),
    sa.Column('number_value', sa.Integer(), nullable=True),
    sa.Column('text_enc', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['cycle_id'], ['checkin_cycles.id'], name=op.f('fk_checkin_answers_cycle_id_checkin_cycles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkin_answers'))
    )
    with op.batch_alter_table('checkin_answers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkin_answers_cycle_id'), ['cycle_id'], unique=False)

    op.create_table('checkin_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cycle_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('progress_enc', sa.LargeBinary(), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['cycle_id'], ['checkin_cycles.id'], name=op.f('fk_checkin_deliveries_cycle_id_checkin_cycles'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_checkin_deliveries_participant_id_participants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkin_deliveries')),
    sa.UniqueConstraint('cycle_id', 'participant_id', name=op.f('uq_checkin_deliveries_cycle_id'))
    )
    with op.batch_alter_table('checkin_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkin_deliveries_cycle_id'), ['cycle_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_checkin_deliveries_participant_id'), ['participant_id'], unique=False)

    op.create_table('checkin_flags',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cycle_id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('flag', sa.String(length=16), nullable=False),
    sa.Column('question_id', sa.String(length=48), nullable=False),
    sa.Column('option_id', sa.String(length=48), nullable=False),
    sa.Column('raised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('acked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acked_by', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['cycle_id'], ['checkin_cycles.id'], name=op.f('fk_checkin_flags_cycle_id_checkin_cycles'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_checkin_flags_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkin_flags'))
    )
    with op.batch_alter_table('checkin_flags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkin_flags_cycle_id'), ['cycle_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_checkin_flags_organisation_id'), ['organisation_id'], unique=False)

    with op.batch_alter_table('invite_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contact_person', sa.Boolean(), server_default=sa.false(), nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('invite_codes', schema=None) as batch_op:
        batch_op.drop_column('contact_person')

    with op.batch_alter_table('checkin_flags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkin_flags_organisation_id'))
        batch_op.drop_index(batch_op.f('ix_checkin_flags_cycle_id'))

    op.drop_table('checkin_flags')
    with op.batch_alter_table('checkin_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkin_deliveries_participant_id'))
        batch_op.drop_index(batch_op.f('ix_checkin_deliveries_cycle_id'))

    op.drop_table('checkin_deliveries')
    with op.batch_alter_table('checkin_answers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkin_answers_cycle_id'))

    op.drop_table('checkin_answers')
    with op.batch_alter_table('organisation_contacts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_organisation_contacts_participant_id'))

    op.drop_table('organisation_contacts')
    with op.batch_alter_table('checkin_cycles', schema=None) as batch_op:
        batch_op.drop_index('ix_checkin_cycles_open')
        batch_op.drop_index(batch_op.f('ix_checkin_cycles_answered_by'))

    op.drop_table('checkin_cycles')
    with op.batch_alter_table('checkin_schedules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkin_schedules_next_due_at'))

    op.drop_table('checkin_schedules')
