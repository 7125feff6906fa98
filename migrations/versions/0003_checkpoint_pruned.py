"""Checkpoints remember when `neurorl prune` deleted their file (the row and its evaluations stay).

Revision ID: 0003_checkpoint_pruned
Revises: 0002_evaluation_direction
Create Date: 2026-11-22
"""

from alembic import op
import sqlalchemy as sa

revision = "0003_checkpoint_pruned"
down_revision = "0002_evaluation_direction"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("checkpoint") as batch:
        batch.add_column(sa.Column("pruned", sa.DateTime(), nullable=True))


def downgrade() -> None:
    raise RuntimeError("registry migrations are forward only; restore a backup instead")
