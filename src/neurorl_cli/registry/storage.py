"""Freeing disk: pruning checkpoints, removing runs. Plans first (what, how many bytes), then acts.

`prune` keeps, per run, the last checkpoint (a resume starts there) and the best one under
each protocol it was evaluated with; it deletes the other files but keeps their rows and
evaluations (marked `pruned`), so learning curves over checkpoints stay whole. A run never
evaluated keeps everything: which checkpoint is best is not known yet.

Rows go before files: a command killed half-way leaves a file nobody points to, never a
row pointing to a file that is gone.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, select

from neurorl_cli.runlog import CHECKPOINTS, EVENTS, RUN_FILE
from neurorl_cli.registry import queries
from neurorl_cli.registry.models import Checkpoint, Run, now

ACTIVE = ("queued", "running")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _tree_size(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(_size(p) for p in folder.rglob("*") if p.is_file())


@dataclass
class PrunePlan:
    checkpoints: list[tuple[int, Path]] = field(default_factory=list)  # (checkpoint id, file)
    leftovers: list[Path] = field(default_factory=list)  # temporary files of interrupted writes
    runs: set[int] = field(default_factory=set)
    active: list[int] = field(default_factory=list)  # skipped: still training
    unevaluated: list[int] = field(default_factory=list)  # skipped: best not known yet
    bytes: int = 0


def plan_prune(session: Session, runs: list[Run]) -> PrunePlan:
    plan = PrunePlan()
    for run in runs:
        run_dir = Path(run.run_dir)
        if run.status in ACTIVE:
            plan.active.append(run.id)
            continue
        # A temporary checkpoint file outlives only a writer killed mid-write: never registered.
        for tmp in sorted((run_dir / CHECKPOINTS).glob(".*.tmp*")):
            plan.leftovers.append(tmp)
            plan.bytes += _size(tmp)
        cks = queries.checkpoints(session, run.id)
        if not cks:
            continue
        best = queries.best_checkpoint(session, [run.id])
        if not best:
            plan.unevaluated.append(run.id)
            continue
        keep = {cks[-1].id} | {ck.id for (_, _), (_, ck) in best.items()}
        for ck in cks:
            if ck.id not in keep:
                path = run_dir / ck.path
                plan.checkpoints.append((ck.id, path))
                plan.runs.add(run.id)
                plan.bytes += _size(path)
    return plan


def apply_prune(engine: Engine, plan: PrunePlan) -> None:
    with Session(engine) as session:
        stamp = now()
        for ck_id, _ in plan.checkpoints:
            row = session.get(Checkpoint, ck_id)
            row.pruned = stamp
            session.add(row)
        session.commit()
    for _, path in plan.checkpoints:
        path.unlink(missing_ok=True)
    for path in plan.leftovers:
        path.unlink(missing_ok=True)


@dataclass
class RemovePlan:
    runs: list[Run]
    bytes: int
    folders: list[Path]  # run directories that will be deleted
    strangers: list[Path]  # run_dir values that do not look like run directories: left alone


def plan_remove(runs: list[Run]) -> RemovePlan:
    folders, strangers, size = [], [], 0
    for run in runs:
        folder = Path(run.run_dir)
        if not folder.is_dir():
            continue
        # Delete only what neurorl made: a folder holding its run file or event log.
        if (folder / RUN_FILE).exists() or (folder / EVENTS).exists():
            folders.append(folder)
            size += _tree_size(folder)
        else:
            strangers.append(folder)
    return RemovePlan(runs, size, folders, strangers)


def remove_runs(engine: Engine, plan: RemovePlan) -> None:
    ids = tuple(r.id for r in plan.runs)
    if not ids:
        return
    marks = ",".join("?" * len(ids))
    with engine.begin() as conn:
        exps = [r[0] for r in conn.exec_driver_sql(f"SELECT DISTINCT experiment_id FROM run WHERE id IN ({marks})", ids)]
        checkpoints = f"SELECT id FROM checkpoint WHERE run_id IN ({marks})"
        evaluations = f"SELECT id FROM evaluation WHERE checkpoint_id IN ({checkpoints})"
        conn.exec_driver_sql(f"DELETE FROM trial WHERE evaluation_id IN ({evaluations})", ids)
        conn.exec_driver_sql(f"DELETE FROM evaluation WHERE checkpoint_id IN ({checkpoints})", ids)
        for table in ("checkpoint", "metric", "artifact"):
            conn.exec_driver_sql(f"DELETE FROM {table} WHERE run_id IN ({marks})", ids)
        conn.exec_driver_sql(f"DELETE FROM run WHERE id IN ({marks})", ids)
        # An experiment left without runs goes too (its config returns with the next `train`).
        for exp in exps:
            if conn.exec_driver_sql("SELECT 1 FROM run WHERE experiment_id = ?", (exp,)).first() is None:
                conn.exec_driver_sql("DELETE FROM artifact WHERE experiment_id = ?", (exp,))
                conn.exec_driver_sql("DELETE FROM experiment WHERE id = ?", (exp,))
    for folder in plan.folders:
        shutil.rmtree(folder, ignore_errors=True)


def runs_of(session: Session, refs: list[str], prefer: str = "run") -> list[Run]:
    """Runs named by ids, hash prefixes or experiment names (each expanded to all its runs)."""
    if not refs:
        return list(session.exec(select(Run).order_by(Run.id)))
    found: dict[int, Run] = {}
    for ref in refs:
        for run in queries.target(session, ref, prefer=prefer).runs:
            found[run.id] = run
    return [found[k] for k in sorted(found)]


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"

