"""A worker process: trains one run from its run directory, or a seed group from several,
reporting only through their run logs.

SIGTERM (scancel, preemption, the dispatcher stopping it) and Ctrl-C ask the backend to stop
at its next step with a final checkpoint; the run ends `cancelled`. A backend that does not
consult the request is interrupted after STOP_GRACE seconds, as before.

A scheduler may start the same run directory again (Slurm requeues a preempted job with its
script unchanged): the worker then sees that its attempt already ran, and continues as the
next attempt from the last checkpoint it finds announced.
"""

from __future__ import annotations

import json
import signal
import sys
import traceback
from pathlib import Path

from neurorl_cli.interfaces import NotOffered, RunConfig
from neurorl_cli.plugins import engine_of
from neurorl_cli.runlog import EVENTS, RunLog, read_run_file, write_run_file

# Seconds a backend has to reach its next step and save after a stop request. Slurm's
# default KillWait (30 s between SIGTERM and SIGKILL) leaves room for the final checkpoint.
STOP_GRACE = 15


class Cancelled(KeyboardInterrupt):
    """A stop request the backend did not honour in time."""


def scan(run_dir: Path) -> tuple[int, tuple[int, str] | None, bool]:
    """The newest attempt that started here, the last announced checkpoint (step, path), and
    whether the run completed here already."""
    started, last, completed = 0, None, False
    try:
        fh = open(run_dir / EVENTS, "rb")
    except FileNotFoundError:
        return 0, None, False
    with fh:
        for raw in fh:
            if b'"type":"status"' not in raw and b'"type":"checkpoint"' not in raw:
                continue  # most lines are metrics: skip them unparsed
            try:
                event = json.loads(raw)
            except ValueError:
                continue  # a line cut short by a kill
            if event.get("type") == "status":
                if event.get("status") == "running":
                    started = max(started, int(event.get("attempt", 1)))
                completed = event.get("status") == "completed"
            elif event.get("type") == "checkpoint" and (run_dir / event["path"]).is_file():
                if last is None or event["step"] >= last[0]:
                    last = (int(event["step"]), event["path"])
    return started, last, completed


def prepare_attempt(run_dir: Path) -> dict | None:
    """The run file, moved on to the next attempt when this attempt has run here already;
    None when the run completed (a requeued job of a finished run has nothing to do)."""
    spec = read_run_file(run_dir)
    started, last, completed = scan(Path(spec["run_dir"]))
    if completed:
        return None
    if started >= spec["attempt"]:
        spec["attempt"] = started + 1
        spec["resume_from"] = str(Path(spec["run_dir"]) / last[1]) if last else None
        write_run_file(run_dir, spec)
    return spec


def run_worker(*run_dirs: Path) -> int:
    """Train the runs of these directories in this process: one run, or a seed group (several
    seeds of one experiment, trained together by an engine that can; else one after another).
    Exit code: 0 when every run completed, 130 when stopped, 1 when any failed."""
    runs = []
    for run_dir in map(Path, run_dirs):
        spec = prepare_attempt(run_dir)
        if spec is None:
            print(f"{run_dir}: this run completed already; nothing to do", file=sys.stderr)
        else:
            runs.append(RunConfig(**spec))
    if not runs:
        return 0
    logs = [RunLog(Path(run.run_dir), attempt=run.attempt) for run in runs]
    if len(runs) > 1:
        for run, log in zip(runs, logs):
            log.group = run.group or [r.run_id for r in runs]

    def request_stop(signum, frame):
        if not any(log.stop_requested for log in logs):
            for log in logs:
                log.request_stop()
            signal.alarm(STOP_GRACE)

    def overdue(signum, frame):
        raise Cancelled()

    signal.signal(signal.SIGALRM, overdue)
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    if runs[0].threads:  # this worker's share of the cores, set here for every backend
        import torch

        torch.set_num_threads(runs[0].threads)
    engine = engine_of(runs[0].config)
    try:
        if len(runs) > 1:
            try:
                _train(lambda: engine.train_group(runs, logs), logs)
                return _exit_code(logs)
            except NotOffered as why:
                print(f"{why}: the group's seeds train one after another", file=sys.stderr)
        for run, log in zip(runs, logs):
            if log.stop_requested and not log.finished:  # stopped before this seed's turn
                log.finish("cancelled", error="stopped by a signal (SIGTERM or Ctrl-C) before it started")
            elif not log.finished:
                _train(lambda: engine.train(run, log), [log])
        return _exit_code(logs)
    finally:
        signal.alarm(0)
        for log in logs:
            log.close()


def _train(train, logs: list[RunLog]) -> None:
    """Run `train` and give each of `logs` not yet finished its final status."""
    try:
        train()
        signal.alarm(0)
        for log in logs:
            if log.finished:
                continue
            if log.stop_requested:
                log.finish("cancelled", error=f"stopped by a signal (SIGTERM or Ctrl-C) at step {log.step}, after a final checkpoint")
            else:
                log.finish("completed")
    except NotOffered:
        raise
    except KeyboardInterrupt:
        for log in logs:
            if not log.finished:
                log.finish("cancelled", error="stopped by a signal (SIGTERM or Ctrl-C)")
    except Exception as exc:  # the run failed: say why in the registry, keep the traceback in the log
        traceback.print_exc(file=sys.stderr)
        for log in logs:
            if not log.finished:
                log.finish("failed", error=f"{type(exc).__name__}: {exc}"[:2000])


def _exit_code(logs: list[RunLog]) -> int:
    statuses = {log.final for log in logs}
    return 1 if "failed" in statuses else 130 if "cancelled" in statuses else 0


if __name__ == "__main__":
    # Dispatchers start workers this way: no CLI framework to import first.
    sys.exit(run_worker(*map(Path, sys.argv[1:])))
