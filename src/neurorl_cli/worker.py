"""A worker process: trains one run from its run directory, reporting only through the run log.

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

from neurorl_cli.interfaces import RunConfig
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


def run_worker(run_dir: Path) -> int:
    spec = prepare_attempt(Path(run_dir))
    if spec is None:
        print(f"{run_dir}: this run completed already; nothing to do", file=sys.stderr)
        return 0
    run = RunConfig(**spec)
    log = RunLog(Path(run.run_dir), attempt=run.attempt)

    def request_stop(signum, frame):
        if not log.stop_requested:
            log.request_stop()
            signal.alarm(STOP_GRACE)

    def overdue(signum, frame):
        raise Cancelled()

    signal.signal(signal.SIGALRM, overdue)
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    if run.threads:  # this worker's share of the cores, set here for every backend
        import torch

        torch.set_num_threads(run.threads)
    try:
        engine_of(run.config).train(run, log)
        signal.alarm(0)
        if log.stop_requested:
            log.finish("cancelled", error=f"stopped by a signal (SIGTERM or Ctrl-C) at step {log.step}, after a final checkpoint")
            return 130
        log.finish("completed")
        return 0
    except KeyboardInterrupt:
        log.finish("cancelled", error="stopped by a signal (SIGTERM or Ctrl-C)")
        return 130
    except Exception as exc:  # the run failed: say why in the registry, keep the traceback in the log
        traceback.print_exc(file=sys.stderr)
        log.finish("failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        return 1
    finally:
        signal.alarm(0)
        log.close()


if __name__ == "__main__":
    # Dispatchers start workers this way: no CLI framework to import first.
    sys.exit(run_worker(Path(sys.argv[1])))
