"""The ballot box of anonymous survey answers: apart from the invitations, stored in batches.

Revision ID: 0009_survey_ballots
Revises: 0008_cases
Create Date: 2026-12-02 06:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0009_survey_ballots'
down_revision = '0008_cases'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('survey_ballots',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('survey_id', sa.String(length=48), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('payload_enc', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['survey_runs.id'], name=op.f('fk_survey_ballots_run_id_survey_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_survey_ballots')),
    sqlite_with_rowid=False
    )


def downgrade() -> None:
    op.drop_table('survey_ballots')
