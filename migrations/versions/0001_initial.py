"""The first registry: experiments, runs, checkpoints, metrics, evaluations, trials, artifacts.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-21
"""

from alembic import op
import sqlalchemy as sa

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('experiment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('config_hash', sa.String(), nullable=False),
    sa.Column('task', sa.String(), nullable=False),
    sa.Column('model', sa.String(), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('name', sa.String(), nullable=True),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_index(op.f('ix_experiment_config_hash'), 'experiment', ['config_hash'], unique=True)
    op.create_index(op.f('ix_experiment_model'), 'experiment', ['model'], unique=False)
    op.create_index(op.f('ix_experiment_task'), 'experiment', ['task'], unique=False)
    op.create_table('run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('run_hash', sa.String(), nullable=False),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('device', sa.String(), nullable=True),
    sa.Column('launcher', sa.String(), nullable=False),
    sa.Column('job_id', sa.String(), nullable=True),
    sa.Column('host', sa.String(), nullable=True),
    sa.Column('run_dir', sa.String(), nullable=False),
    sa.Column('heartbeat', sa.DateTime(), nullable=True),
    sa.Column('steps_done', sa.Integer(), nullable=False),
    sa.Column('versions', sa.JSON(), nullable=False),
    sa.Column('error', sa.String(), nullable=True),
    sa.Column('log_offset', sa.Integer(), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.Column('started', sa.DateTime(), nullable=True),
    sa.Column('ended', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiment.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_run_experiment_id'), 'run', ['experiment_id'], unique=False)
    op.create_index(op.f('ix_run_run_hash'), 'run', ['run_hash'], unique=False)
    op.create_index(op.f('ix_run_status'), 'run', ['status'], unique=False)
    op.create_table('artifact',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('path', sa.String(), nullable=False),
    sa.Column('query', sa.String(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiment.id'], ),
    sa.ForeignKeyConstraint(['run_id'], ['run.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('checkpoint',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(), nullable=False),
    sa.Column('sha256', sa.String(), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['run.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_id', 'step')
    )
    op.create_index(op.f('ix_checkpoint_run_id'), 'checkpoint', ['run_id'], unique=False)
    op.create_table('metric',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['run.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_id', 'attempt', 'key', 'step')
    )
    op.create_table('evaluation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('protocol', sa.String(), nullable=False),
    sa.Column('protocol_hash', sa.String(), nullable=False),
    sa.Column('select', sa.String(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('trials', sa.Integer(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoint.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('checkpoint_id', 'protocol_hash')
    )
    op.create_index(op.f('ix_evaluation_checkpoint_id'), 'evaluation', ['checkpoint_id'], unique=False)
    op.create_table('trial',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('evaluation_id', sa.Integer(), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('env', sa.Integer(), nullable=False),
    sa.Column('ground_truth', sa.Float(), nullable=True),
    sa.Column('choice', sa.Float(), nullable=True),
    sa.Column('correct', sa.Float(), nullable=True),
    sa.Column('reward', sa.Float(), nullable=False),
    sa.Column('reaction_time', sa.Float(), nullable=True),
    sa.Column('steps', sa.Integer(), nullable=False),
    sa.Column('conditions', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['evaluation_id'], ['evaluation.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_trial_evaluation', 'trial', ['evaluation_id', 'index'], unique=False)


def downgrade() -> None:
    raise RuntimeError("registry migrations are forward only; restore a backup instead")
