"""Metrics a later attempt superseded stay stored but are marked, so each (key, step) shows once.

Existing rows are marked as ingest now marks them: a row of attempt a is superseded when a
later attempt logged the same (key, step), or when the run went on to a later attempt and the
row lies past the last checkpoint attempt a left (where that attempt resumed from).

Revision ID: 0004_metric_superseded
Revises: 0003_checkpoint_pruned
Create Date: 2026-12-02
"""

from alembic import op
import sqlalchemy as sa

revision = "0004_metric_superseded"
down_revision = "0003_checkpoint_pruned"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("metric") as batch:
        batch.add_column(sa.Column("superseded", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(
        "UPDATE metric SET superseded = 1 "
        "WHERE run_id IN (SELECT id FROM run WHERE attempt > 1) AND ("
        " EXISTS (SELECT 1 FROM metric later WHERE later.run_id = metric.run_id AND later.key = metric.key"
        "  AND later.step = metric.step AND later.attempt > metric.attempt)"
        " OR EXISTS (SELECT 1 FROM run WHERE run.id = metric.run_id AND run.attempt > metric.attempt"
        "  AND metric.step > COALESCE((SELECT MAX(step) FROM checkpoint c"
        "   WHERE c.run_id = metric.run_id AND c.attempt <= metric.attempt), -1)))"
    )


def downgrade() -> None:
    raise RuntimeError("registry migrations are forward only; restore a backup instead")
