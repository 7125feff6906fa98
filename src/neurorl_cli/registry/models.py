"""All registry tables (SQLModel). Schema changes go through a new Alembic revision."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Column, Index, String, UniqueConstraint
from sqlalchemy import false as sa_false
from sqlalchemy import true as sa_true
from sqlalchemy.types import JSON, TypeDecorator
from sqlmodel import Field, SQLModel

from neurorl_cli.home import from_stored, to_stored

RUN_STATUSES = ("queued", "running", "completed", "failed", "crashed", "cancelled")
FINISHED = ("completed", "failed", "crashed", "cancelled")


def now() -> datetime:
    return datetime.now(UTC)


class RunsPath(TypeDecorator):
    """A path stored relative to the runs root where it lies under it, read back absolute.

    The root comes from the engine (`db.open_registry` sets `dialect.runs_root`), so every
    reader and writer of these columns sees absolute paths under today's root, and a registry
    moved with its runs stays whole. An engine without a root passes paths through as stored.
    """

    impl = String
    cache_ok = True

    def process_bind_param(self, value, dialect):
        root = getattr(dialect, "runs_root", None)
        return value if root is None or value is None else to_stored(str(value), Path(root))

    def process_result_value(self, value, dialect):
        root = getattr(dialect, "runs_root", None)
        return value if root is None or value is None else from_stored(value, Path(root))


class Experiment(SQLModel, table=True):
    """One frozen config (task + model + overrides + budget); its seeds are runs."""

    id: int | None = Field(default=None, primary_key=True)
    config_hash: str = Field(unique=True, index=True)
    task: str = Field(index=True)
    model: str = Field(index=True)
    config: dict = Field(sa_column=Column(JSON, nullable=False))
    name: str | None = Field(default=None, unique=True)
    tags: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created: datetime = Field(default_factory=now)


class Run(SQLModel, table=True):
    """One seed of one experiment; `--resume` continues it as its next attempt."""

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id", index=True)
    seed: int
    run_hash: str = Field(index=True)
    status: str = Field(default="queued", index=True)
    attempt: int = 1
    device: str | None = None
    launcher: str = "local"
    job_id: str | None = None
    host: str | None = None
    run_dir: str = Field(sa_type=RunsPath)
    heartbeat: datetime | None = None  # the worker's latest promise of its next check-in
    steps_done: int = 0
    versions: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error: str | None = None
    outcome: str | None = None  # how a completed run ended, where that is part of its result (a cap)
    log_offset: int = 0  # bytes of events.jsonl already ingested
    created: datetime = Field(default_factory=now)
    started: datetime | None = None
    ended: datetime | None = None


class Checkpoint(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("run_id", "step"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    attempt: int = 1
    step: int
    path: str  # relative to the run directory
    sha256: str
    created: datetime = Field(default_factory=now)
    pruned: datetime | None = None  # when `neurorl prune` deleted the file; its evaluations stay


class Metric(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("run_id", "attempt", "key", "step"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id")
    attempt: int
    key: str
    step: int
    value: float
    # Logged by an attempt after the checkpoint a later attempt resumed from (or at a step a
    # later attempt logged again): kept, but no curve, export or API call shows it.
    superseded: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})


class Evaluation(SQLModel, table=True):
    """One checkpoint under one protocol; `metrics` holds what the protocol measured."""

    __table_args__ = (UniqueConstraint("checkpoint_id", "protocol_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    checkpoint_id: int = Field(foreign_key="checkpoint.id", index=True)
    protocol: str
    protocol_hash: str
    select: str  # the metric that picks the best checkpoint under this protocol
    score: float  # that metric's value, for ordering
    higher_is_better: bool = Field(default=True, sa_column_kwargs={"server_default": sa_true()})
    trials: int
    metrics: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created: datetime = Field(default_factory=now)


class Trial(SQLModel, table=True):
    """One evaluated trial, for analyses (psychometric curves, reaction times) and export."""

    __table_args__ = (Index("ix_trial_evaluation", "evaluation_id", "index"),)

    id: int | None = Field(default=None, primary_key=True)
    evaluation_id: int = Field(foreign_key="evaluation.id")
    index: int
    env: int  # which of the evaluation's parallel environments ran it
    ground_truth: float | None = None
    choice: float | None = None
    correct: float | None = None
    reward: float
    reaction_time: float | None = None  # ms from stimulus onset to the first response
    steps: int
    conditions: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Artifact(SQLModel, table=True):
    """A file that report or watch wrote, with the query that made it."""

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    path: str = Field(sa_type=RunsPath)
    query: str
    experiment_id: int | None = Field(default=None, foreign_key="experiment.id")
    run_id: int | None = Field(default=None, foreign_key="run.id")
    created: datetime = Field(default_factory=now)
