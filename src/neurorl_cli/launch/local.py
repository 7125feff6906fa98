"""Local dispatcher: up to `jobs` worker processes, progress bars fed by ingesting run logs.

The workers write only their run directories; this process is the registry's one writer.
Ctrl-C, SIGTERM or this process failing stops the workers (SIGTERM; each writes a clean
`cancelled` status) and marks what did not report as cancelled, so nothing half-written is
registered and no worker goes on unwatched.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from rich.console import Console
from sqlalchemy import Engine
from sqlmodel import Session

from neurorl_cli.registry.ingest import finish_unfinished, ingest
from neurorl_cli.registry.models import FINISHED, Run
from neurorl_cli.launch import progress as bars_

POLL = 1.0  # seconds between ingests while workers run
WORKER_LOG = "worker.log"


def gpu_count() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in listing.splitlines() if line.startswith("GPU "))


def _worker_env(slot: int, device: str, gpus: list[str]) -> dict:
    env = dict(os.environ)
    if device in ("cuda", "auto") and len(gpus) > 1:
        env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]  # spread workers over the GPUs
    return env


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def _wait_any(procs: list[subprocess.Popen], timeout: float) -> None:
    """Wait `timeout` seconds, or less if a worker exits: its runs' final status and its slot
    should not wait out a whole poll (a short training is often shorter than one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and all(proc.poll() is None for proc in procs):
        time.sleep(0.02)


class LocalDispatcher:
    def __init__(self, engine: Engine, jobs: int, device: str, console: Console):
        self.engine = engine
        self.jobs = max(1, jobs)
        self.device = device
        self.console = console

    def run(self, groups: list[list[Run]], total_steps: dict[int, int]) -> dict[int, str]:
        """Train each group of runs in one worker process (a group of one: one run)."""
        runs = [run for group in groups for run in group]
        pending = deque(groups)
        active: dict[int, tuple[list[Run], subprocess.Popen]] = {}  # by the group's first run
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = [g.strip() for g in visible.split(",")] if visible else [str(i) for i in range(gpu_count())]
        started = 0
        progress, bars = bars_.bars(self.console, runs, total_steps)
        ids = [r.id for r in runs]
        try:
            with progress:
                while pending or active:
                    while pending and len(active) < self.jobs:
                        group = pending.popleft()
                        # A group's output goes to its first run's worker.log (the others' errors
                        # reach the registry through their own run logs).
                        log = open(Path(group[0].run_dir) / WORKER_LOG, "ab")
                        proc = subprocess.Popen(
                            [sys.executable, "-m", "neurorl_cli.worker", *(r.run_dir for r in group)],
                            stdout=log, stderr=subprocess.STDOUT, env=_worker_env(started, self.device, gpus),
                        )
                        log.close()
                        started += 1
                        active[group[0].id] = (group, proc)
                        for run in group:
                            self._set_job(run.id, str(proc.pid))
                    _wait_any([proc for _, proc in active.values()], POLL)
                    exited = [active.pop(key) for key, (_, p) in list(active.items()) if p.poll() is not None]
                    state = ingest(self.engine, ids)
                    for group, proc in exited:
                        for run in group:
                            if state[run.id].status in FINISHED:
                                continue
                            # died without saying why
                            if proc.returncode < 0:  # killed by a signal (SIGKILL, the OOM killer)
                                name = signal.Signals(-proc.returncode).name
                                finish_unfinished(self.engine, [run.id], "crashed", f"worker killed by {name}")
                                state[run.id].status = "crashed"
                                continue
                            why = _tail(Path(group[0].run_dir) / WORKER_LOG) or f"worker exited with code {proc.returncode}"
                            finish_unfinished(self.engine, [run.id], "failed", why[-2000:])
                            state[run.id].status = "failed"
                    bars_.show(progress, bars, state)
        except BaseException as stop:
            # Ctrl-C or SIGTERM, and also this process failing (its output closed under it, so
            # that the progress display cannot print): no worker is left training unwatched.
            procs = [proc for _, proc in active.values()]
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            deadline = time.time() + 20
            for proc in procs:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    proc.kill()
            ingest(self.engine, ids)
            why = "cancelled by Ctrl-C or SIGTERM" if isinstance(stop, KeyboardInterrupt) else \
                f"cancelled: neurorl stopped on {type(stop).__name__}: {stop}"[:500]
            finish_unfinished(self.engine, ids, "cancelled", why)
            raise
        return {rid: p.status for rid, p in ingest(self.engine, ids).items()}

    def _set_job(self, run_id: int, job_id: str) -> None:
        with Session(self.engine) as session:
            row = session.get(Run, run_id)
            row.job_id = job_id
            session.add(row)
            session.commit()
