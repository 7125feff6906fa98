"""Evaluations remember whether their score is better high or low (protocols with `mode = "min"`).

Revision ID: 0002_evaluation_direction
Revises: 0001_initial
Create Date: 2026-11-21
"""

from alembic import op
import sqlalchemy as sa

revision = "0002_evaluation_direction"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evaluation") as batch:
        batch.add_column(sa.Column("higher_is_better", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    raise RuntimeError("registry migrations are forward only; restore a backup instead")
