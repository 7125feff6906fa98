"""Local dispatcher: up to `jobs` worker processes, progress bars fed by ingesting run logs.

The workers write only their run directories; this process is the registry's one writer.
Ctrl-C stops the workers (SIGTERM; each writes a clean `cancelled` status) and marks what
did not report as cancelled, so nothing half-written is registered.
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


class LocalDispatcher:
    def __init__(self, engine: Engine, jobs: int, device: str, console: Console):
        self.engine = engine
        self.jobs = max(1, jobs)
        self.device = device
        self.console = console

    def run(self, runs: list[Run], total_steps: dict[int, int]) -> dict[int, str]:
        pending = deque(runs)
        active: dict[int, subprocess.Popen] = {}
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = [g.strip() for g in visible.split(",")] if visible else [str(i) for i in range(gpu_count())]
        started = 0
        progress, bars = bars_.bars(self.console, runs, total_steps)
        ids = [r.id for r in runs]
        try:
            with progress:
                while pending or active:
                    while pending and len(active) < self.jobs:
                        run = pending.popleft()
                        log = open(Path(run.run_dir) / WORKER_LOG, "ab")
                        proc = subprocess.Popen(
                            [sys.executable, "-m", "neurorl_cli.worker", run.run_dir],
                            stdout=log, stderr=subprocess.STDOUT, env=_worker_env(started, self.device, gpus),
                        )
                        log.close()
                        started += 1
                        active[run.id] = proc
                        self._set_job(run.id, str(proc.pid))
                    time.sleep(POLL)
                    exited = {rid: p for rid, p in active.items() if p.poll() is not None}
                    for rid in exited:
                        del active[rid]
                    state = ingest(self.engine, ids)
                    for rid, proc in exited.items():
                        if state[rid].status not in FINISHED:  # died without saying why
                            run_dir = next(r.run_dir for r in runs if r.id == rid)
                            if proc.returncode < 0:  # killed by a signal (SIGKILL, the OOM killer)
                                name = signal.Signals(-proc.returncode).name
                                finish_unfinished(self.engine, [rid], "crashed", f"worker killed by {name}")
                                state[rid].status = "crashed"
                                continue
                            why = _tail(Path(run_dir) / WORKER_LOG) or f"worker exited with code {proc.returncode}"
                            finish_unfinished(self.engine, [rid], "failed", why[-2000:])
                            state[rid].status = "failed"
                    bars_.show(progress, bars, state)
        except KeyboardInterrupt:
            for proc in active.values():
                proc.send_signal(signal.SIGTERM)
            deadline = time.time() + 20
            for proc in active.values():
                try:
                    proc.wait(timeout=max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    proc.kill()
            ingest(self.engine, ids)
            finish_unfinished(self.engine, ids, "cancelled", "cancelled by Ctrl-C")
            raise
        return {rid: p.status for rid, p in ingest(self.engine, ids).items()}

    def _set_job(self, run_id: int, job_id: str) -> None:
        with Session(self.engine) as session:
            row = session.get(Run, run_id)
            row.job_id = job_id
            session.add(row)
            session.commit()
