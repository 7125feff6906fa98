"""Run logs -> registry, idempotently.

Each run remembers how many bytes of its `events.jsonl` have landed (`run.log_offset`);
only whole lines are read (a truncated last line waits for the next pass), and rows go in
with INSERT OR IGNORE on their unique keys, in the same transaction as the new offset.
So an ingest killed half-way, or two ingests at once, land every event exactly once.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from neurorl_cli.home import from_stored, to_stored
from neurorl_cli.runlog import EVENTS, read_run_file
from neurorl_cli.registry.db import runs_root
from neurorl_cli.registry.models import FINISHED

CRASH_GRACE = 15.0  # seconds past a heartbeat's promise before a run counts as crashed
CRASH_GRACE_ENV = "NEURORL_CRASH_GRACE"  # overrides it (tests, benchmarks, slow file systems)


def crash_grace() -> float:
    value = os.environ.get(CRASH_GRACE_ENV)
    return float(value) if value else CRASH_GRACE


@dataclass
class Progress:
    """What the progress bars show of a run."""

    status: str
    step: int = 0
    latest: dict[str, float] = field(default_factory=dict)


def _ts(value: float) -> str:
    """A timestamp as SQLAlchemy stores datetimes in SQLite (UTC, no offset), for raw SQL."""
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _read_new(path: Path, offset: int) -> tuple[list[bytes], int]:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    return data[: end + 1].splitlines(), offset + end + 1


def ingest(engine: Engine, run_ids: list[int] | None = None, warn=None) -> dict[int, Progress]:
    """Ingest new events of the given runs (default: every run whose log may have grown)."""
    progress: dict[int, Progress] = {}
    with engine.connect() as probe:
        if run_ids is None:
            rows = probe.exec_driver_sql("SELECT id, run_dir, log_offset FROM run").fetchall()
        else:
            marks = ",".join("?" * len(run_ids)) or "NULL"
            rows = probe.exec_driver_sql(
                f"SELECT id, run_dir, log_offset FROM run WHERE id IN ({marks})", tuple(run_ids)
            ).fetchall()
        probe.rollback()
    root = runs_root(engine)
    for run_id, run_dir, offset in rows:
        path = Path(from_stored(run_dir, root) if root else run_dir) / EVENTS
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        if size > offset:
            _ingest_one(engine, run_id, path, warn, root)
    _mark_crashed(engine)
    if run_ids is None:
        return progress
    with engine.connect() as conn:
        ids = [r[0] for r in rows]
        if ids:
            marks = ",".join("?" * len(ids))
            for rid, status, steps in conn.exec_driver_sql(
                f"SELECT id, status, steps_done FROM run WHERE id IN ({marks})", tuple(ids)
            ):
                progress[rid] = Progress(status=status, step=steps)
            # SQLite takes the bare column `value` from the row holding MAX(step).
            latest = conn.exec_driver_sql(
                f"SELECT run_id, key, value, MAX(step) FROM metric WHERE run_id IN ({marks}) AND NOT superseded "
                "GROUP BY run_id, key",
                tuple(ids),
            )
            for rid, key, value, _ in latest:
                progress[rid].latest[key] = value
        conn.rollback()
    return progress


def _ingest_one(engine: Engine, run_id: int, path: Path, warn, root: Path | None) -> None:
    with engine.begin() as conn:
        # Re-read the offset inside the write transaction: another ingest may have moved it.
        row = conn.exec_driver_sql("SELECT log_offset, attempt, status FROM run WHERE id = ?", (run_id,)).one()
        offset, attempt, status = row
        lines, new_offset = _read_new(path, offset)
        if not lines:
            return
        metrics, checkpoints, artifacts, run_update = [], [], [], {}
        known = dict(conn.exec_driver_sql("SELECT path, step FROM checkpoint WHERE run_id = ?", (run_id,)).all())
        resumes: list[tuple[int, int]] = []  # (attempt, step it resumed from)
        for number, raw in enumerate(lines):
            try:
                event = json.loads(raw)
                kind = event["type"]
            except (ValueError, KeyError, TypeError):
                if warn:
                    warn(f"run r{run_id}: skipped an unreadable line in {path} (byte {offset}+, line {number})")
                continue
            ev_attempt = event.get("attempt", 1)
            if kind == "status" and event.get("status") == "running" and ev_attempt > 1:
                resumes.append((ev_attempt, _resumed_from(path.parent, ev_attempt, known)))
            if kind == "status" and event.get("status") in ("queued", "running") and ev_attempt > attempt:
                # A later attempt was queued or started here on its own (the scheduler requeued
                # the job): it speaks for the run from now on.
                attempt = ev_attempt
                run_update["attempt"] = attempt
            if kind == "metric":
                step = event["step"]
                metrics.extend((run_id, ev_attempt, k, step, v) for k, v in event["values"].items())
                if ev_attempt == attempt and event.get("progress", True):
                    run_update["steps_done"] = max(run_update.get("steps_done", 0), step)
            elif kind == "checkpoint":
                known[event["path"]] = event["step"]
                checkpoints.append((run_id, ev_attempt, event["step"], event["path"], event["sha256"], _ts(event["t"])))
            elif kind == "artifact":
                query = f"written by run r{run_id} attempt {ev_attempt} while training"
                where = str(path.parent / event["path"])
                artifacts.append((event["kind"], to_stored(where, root) if root else where, query, run_id, _ts(event["t"])))
            elif ev_attempt != attempt:
                continue  # status and heartbeats of an older attempt no longer speak for the run
            elif kind == "heartbeat":
                run_update["heartbeat"] = _ts(event["next"])
                run_update["steps_done"] = max(run_update.get("steps_done", 0), event.get("step", 0))
                if status == "crashed" or run_update.get("status") == "crashed":
                    run_update["status"] = "running"  # a late heartbeat: it was only slow
            elif kind == "status":
                new = event["status"]
                run_update["status"] = new
                if new == "running":
                    run_update.update(
                        started=_ts(event["t"]), host=event.get("host"), device=event.get("device"),
                        versions=json.dumps(event.get("versions", {})), error=None, ended=None, outcome=None,
                    )
                elif new == "queued":
                    run_update.update(ended=None, heartbeat=None, error=event.get("error"))
                else:
                    run_update.update(ended=_ts(event["t"]), error=event.get("error"), outcome=event.get("outcome"))
                    if event.get("step"):
                        run_update["steps_done"] = max(run_update.get("steps_done", 0), event["step"])
        if metrics:
            conn.exec_driver_sql(
                "INSERT OR IGNORE INTO metric (run_id, attempt, key, step, value) VALUES (?, ?, ?, ?, ?)", metrics
            )
        _supersede(conn, run_id, resumes, metrics)
        for ck_run, ck_attempt, step, _, sha, _ in checkpoints:
            # Saved again at a step the run already has (stopped twice before its step count
            # moved, as TD3 is in phase I): the file was replaced, so the registry follows the
            # new file and drops evaluations that describe the old one.
            stale = [r[0] for r in conn.exec_driver_sql(
                "SELECT id FROM checkpoint WHERE run_id = ? AND step = ? AND sha256 != ?", (ck_run, step, sha))]
            for ck_id in stale:
                conn.exec_driver_sql("DELETE FROM trial WHERE evaluation_id IN (SELECT id FROM evaluation WHERE checkpoint_id = ?)", (ck_id,))
                dropped = conn.exec_driver_sql("DELETE FROM evaluation WHERE checkpoint_id = ?", (ck_id,)).rowcount
                if warn:
                    warn(f"run {ck_run}: the checkpoint at step {step} was saved again by attempt {ck_attempt}"
                         + (f"; its {dropped} evaluation(s) of the replaced file were removed" if dropped else ""))
        if checkpoints:
            conn.exec_driver_sql(
                "INSERT INTO checkpoint (run_id, attempt, step, path, sha256, created) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id, step) DO UPDATE SET attempt = excluded.attempt, path = excluded.path, "
                "sha256 = excluded.sha256, created = excluded.created, pruned = NULL WHERE sha256 != excluded.sha256",
                checkpoints,
            )
        if artifacts:
            conn.exec_driver_sql(
                "INSERT INTO artifact (kind, path, query, experiment_id, run_id, created) "
                "SELECT ?, ?, ?, experiment_id, ?, ? FROM run WHERE id = ?",
                [(*a, a[3]) for a in artifacts],
            )
        sets, values = ["log_offset = ?"], [new_offset]
        for key, value in run_update.items():
            # steps and attempts never go backwards, whatever order attempts' events arrive in
            if key in ("steps_done", "attempt"):
                sets.append(f"{key} = MAX({key}, ?)")
            elif key == "versions":
                # Merged over what the CLI recorded at launch (commit, container, host).
                sets.append("versions = json_patch(COALESCE(versions, '{}'), ?)")
            else:
                sets.append(f"{key} = ?")
            values.append(value)
        conn.exec_driver_sql(f"UPDATE run SET {', '.join(sets)} WHERE id = ?", (*values, run_id))


def _resumed_from(run_dir: Path, attempt: int, known: dict[str, int]) -> int:
    """The step `attempt` started from (-1: from scratch). Its run file names the checkpoint
    (the newest intact one, not always the newest); once the file has moved on to a later
    attempt, the run's last checkpoint, where a resume starts when every file is intact."""
    try:
        spec = read_run_file(run_dir)
        if spec["attempt"] == attempt:
            if not spec.get("resume_from"):
                return -1
            name = Path(spec["resume_from"]).relative_to(spec["run_dir"]).as_posix()
            if name in known:
                return known[name]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # unreadable, or written from elsewhere: fall back below
    return max(known.values(), default=-1)


def _supersede(conn, run_id: int, resumes: list[tuple[int, int]], metrics: list[tuple]) -> None:
    """Mark what earlier attempts logged past the checkpoint a later attempt resumed from, and any
    row whose (key, step) a later attempt logged again: stored still, shown never."""
    for later, step in resumes:
        conn.exec_driver_sql(
            "UPDATE metric SET superseded = 1 WHERE run_id = ? AND attempt < ? AND step > ? AND NOT superseded",
            (run_id, later, step),
        )
    if any(m[1] > 1 for m in metrics):
        # Only steps this batch logged can have gained a later row.
        conn.exec_driver_sql(
            "UPDATE metric SET superseded = 1 WHERE run_id = ? AND step >= ? AND NOT superseded AND EXISTS ("
            "SELECT 1 FROM metric later WHERE later.run_id = metric.run_id AND later.key = metric.key "
            "AND later.step = metric.step AND later.attempt > metric.attempt)",
            (run_id, min(m[3] for m in metrics)),
        )


def _mark_crashed(engine: Engine) -> None:
    deadline = _ts(time.time() - crash_grace())
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE run SET status = 'crashed', error = 'no heartbeat since its promised check-in', ended = ? "
            "WHERE status = 'running' AND heartbeat IS NOT NULL AND heartbeat < ?",
            (_ts(time.time()), deadline),
        )


def finish_unfinished(engine: Engine, run_ids: list[int], status: str, error: str | None = None) -> None:
    """Mark runs that never reported an end (e.g. after Ctrl-C, or a worker that died)."""
    if not run_ids:
        return
    marks = ",".join("?" * len(run_ids))
    finished = ",".join(f"'{s}'" for s in FINISHED)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"UPDATE run SET status = ?, error = COALESCE(error, ?), ended = ? "
            f"WHERE id IN ({marks}) AND status NOT IN ({finished})",
            (status, error, _ts(time.time()), *run_ids),
        )
