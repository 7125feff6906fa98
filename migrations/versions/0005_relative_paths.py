"""Run directories and artifact files are stored relative to the runs root where they lie under it,
so moving NEURORL_HOME (or NEURORL_RUNS) with its runs keeps the registry whole. Paths elsewhere
stay absolute, and are read as before.

Revision ID: 0005_relative_paths
Revises: 0004_metric_superseded
Create Date: 2026-12-02
"""

from alembic import context, op
import sqlalchemy as sa

revision = "0005_relative_paths"
down_revision = "0004_metric_superseded"
branch_labels = None
depends_on = None


def upgrade() -> None:
    root = context.config.attributes.get("runs_root")
    if not root:
        return  # run outside neurorl (no runs root known): absolute paths still read as they are
    prefix = root.rstrip("/") + "/"
    for table, column in (("run", "run_dir"), ("artifact", "path")):
        op.get_bind().execute(
            sa.text(f"UPDATE {table} SET {column} = substr({column}, length(:p) + 1) "
                    f"WHERE substr({column}, 1, length(:p)) = :p"),
            {"p": prefix},
        )


def downgrade() -> None:
    raise RuntimeError("registry migrations are forward only; restore a backup instead")
