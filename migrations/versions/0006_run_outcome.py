"""Runs remember how they ended when that is part of the result (a firefly run stopped in phase I
by its cap is completed, and says so).

Revision ID: 0006_run_outcome
Revises: 0005_relative_paths
Create Date: 2026-12-04
"""

from alembic import op
import sqlalchemy as sa

revision = "0006_run_outcome"
down_revision = "0005_relative_paths"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("outcome", sa.String(), nullable=True))


def downgrade() -> None:
    raise RuntimeError("registry migrations are forward only; restore a backup instead")
