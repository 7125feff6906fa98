"""Helpers shared by the command modules: opening the registry, JSON output."""

from __future__ import annotations

import json
from typing import Any

from neurorl_cli.home import find_home


def registry(ingest_logs: bool = True):
    """The upgraded registry engine, with run logs ingested (so statuses are current)."""
    from neurorl_cli.registry.db import open_registry

    home = find_home()
    engine = open_registry(home)
    if ingest_logs:
        refresh(engine)
    return home, engine


def refresh(engine) -> None:
    """Bring the registry up to date with the runs: their logs ingested, and Slurm asked about
    the jobs of runs submitted with --no-wait."""
    from neurorl_cli.registry.ingest import ingest

    ingest(engine, warn=lambda msg: _warn(msg))
    _reconcile_slurm(engine)


def _reconcile_slurm(engine) -> None:
    """Runs submitted with --no-wait: ask the scheduler about their jobs (only when there are any)."""
    with engine.connect() as conn:
        waiting = conn.exec_driver_sql(
            "SELECT 1 FROM run WHERE launcher = 'slurm' AND status IN ('queued', 'running') "
            "AND job_id IS NOT NULL LIMIT 1").first()
        conn.rollback()
    if waiting:
        from neurorl_cli.launch.slurm import reconcile_detached

        reconcile_detached(engine)


def _warn(msg: str) -> None:
    from neurorl_cli.cli.app import err

    err.print(f"[yellow]warning:[/] {msg}")


def table(*headers: str, **kwargs):
    """A rich Table whose cells fold onto more lines where the terminal is narrow: names and
    hashes are copied from it, so none is ever cut short with an ellipsis."""
    from rich.table import Table

    made = Table(*headers, **kwargs)
    for column in made.columns:
        column.overflow = "fold"
    return made


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str, sort_keys=True))
