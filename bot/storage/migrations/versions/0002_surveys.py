"""Surveys: runs, invitations, responses and answers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 16:39:11.639138
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('survey_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('survey_id', sa.String(length=48), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('launched_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_survey_runs_group_id_groups'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_survey_runs'))
    )
    with op.batch_alter_table('survey_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_survey_runs_survey_id'), ['survey_id'], unique=False)

    op.create_table('survey_invitations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('progress_enc', sa.LargeBinary(), nullable=True),
    sa.Column('invited_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_survey_invitations_participant_id_participants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['survey_runs.id'], name=op.f('fk_survey_invitations_run_id_survey_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_survey_invitations')),
    sa.UniqueConstraint('run_id', 'participant_id', name=op.f('uq_survey_invitations_run_id'))
    )
    with op.batch_alter_table('survey_invitations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_survey_invitations_participant_id'), ['participant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_invitations_run_id'), ['run_id'], unique=False)

    op.create_table('survey_responses',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('survey_id', sa.String(length=48), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=True),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('submitted_on', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_survey_responses_participant_id_participants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['survey_runs.id'], name=op.f('fk_survey_responses_run_id_survey_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_survey_responses')),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('survey_responses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_survey_responses_participant_id'), ['participant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_responses_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_responses_survey_id'), ['survey_id'], unique=False)

    op.create_table('survey_answers',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('response_id', sa.String(length=32), nullable=False),
    sa.Column('question_id', sa.String(length=48), nullable=False),
    sa.Column('option_id', sa.String(length=48), nullable=True),
    sa.Column('number_value', sa.Integer(), nullable=True),
    sa.Column('text_enc', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['response_id'], ['survey_responses.id'], name=op.f('fk_survey_answers_response_id_survey_responses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_survey_answers')),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('survey_answers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_survey_answers_response_id'), ['response_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('survey_answers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_survey_answers_response_id'))

    op.drop_table('survey_answers')
    with op.batch_alter_table('survey_responses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_survey_responses_survey_id'))
        batch_op.drop_index(batch_op.f('ix_survey_responses_run_id'))
        batch_op.drop_index(batch_op.f('ix_survey_responses_participant_id'))

    op.drop_table('survey_responses')
    with op.batch_alter_table('survey_invitations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_survey_invitations_run_id'))
        batch_op.drop_index(batch_op.f('ix_survey_invitations_participant_id'))

    op.drop_table('survey_invitations')
    with op.batch_alter_table('survey_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_survey_runs_survey_id'))

    op.drop_table('survey_runs')
