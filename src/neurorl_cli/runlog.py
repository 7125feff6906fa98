"""The worker's side of a run: `run.json` in, `events.jsonl` and checkpoint files out.

A worker never opens the registry. It appends one JSON event per line (a single write
each, so a reader sees whole lines or a truncated last one) and writes checkpoints
atomically, announcing each only after its rename. A background thread sends heartbeats
that promise the next one; when a promise passes unkept, the CLI shows the run as crashed.

A stop request (SIGTERM from scancel or preemption, Ctrl-C) sets `stop_requested`; a
backend's training loop that consults it ends at its next step with a final checkpoint.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from neurorl_cli import atomic

EVENTS = "events.jsonl"
RUN_FILE = "run.json"
CHECKPOINTS = "checkpoints"
HEARTBEAT_EVERY = 10.0  # seconds between heartbeats
PROMISE_FACTOR = 3.0  # each heartbeat promises the next within this many periods
# Overrides the period (tests and benchmarks use short ones; a slow shared file system, long ones).
HEARTBEAT_ENV = "NEURORL_HEARTBEAT_EVERY"


def default_heartbeat_every() -> float:
    value = os.environ.get(HEARTBEAT_ENV)
    return float(value) if value else HEARTBEAT_EVERY


def checkpoint_name(step: int) -> str:
    return f"{CHECKPOINTS}/step_{step:012d}.zip"


class RunLog:
    """Append-only event log of one run attempt."""

    def __init__(self, run_dir: Path, attempt: int = 1, heartbeat_every: float | None = None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.attempt = attempt
        self.step = 0
        # How a completed run ended when that is part of its result (e.g. stopped by a cap
        # before its last phase); the registry shows it beside the status.
        self.outcome: str | None = None
        # The run ids trained in the same process as this one (a seed group), recorded in the
        # start event: a grouped seed may differ from a solo one by float rounding.
        self.group: list[int] | None = None
        # The status it finished with: a group's engine finishes a seed that ends before the others.
        self.final: str | None = None
        self._lock = threading.Lock()
        self._fd = os.open(self.run_dir / EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._heartbeat_every = default_heartbeat_every() if heartbeat_every is None else heartbeat_every
        # A heartbeat period of 0 (no thread) still promises one default period ahead.
        self._promise = PROMISE_FACTOR * (self._heartbeat_every or HEARTBEAT_EVERY)
        self._stop = threading.Event()
        self._stop_requested = threading.Event()
        self._thread: threading.Thread | None = None

    # -- events
    def _emit(self, event: dict) -> None:
        event = {"type": event.pop("type"), "attempt": self.attempt, "t": time.time(), **event}
        line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
        with self._lock:
            os.write(self._fd, line)

    def status(self, status: str, **fields) -> None:
        self._emit({"type": "status", "status": status, **fields})

    @property
    def stop_requested(self) -> bool:
        """True once the worker was asked to stop: end at the next step, after a final checkpoint."""
        return self._stop_requested.is_set()

    def request_stop(self) -> None:
        self._stop_requested.set()

    def started(self, device: str, versions: dict) -> None:
        from neurorl_cli.provenance import worker_side

        try:
            versions = {**worker_side(device), **versions}
        except Exception as exc:  # noqa: BLE001  (provenance must never fail a run)
            versions = {**versions, "provenance_error": repr(exc)[:500]}
        if self.group:
            versions["seed_group"] = self.group
        self.status("running", host=socket.gethostname(), pid=os.getpid(), device=device, versions=versions)
        self.heartbeat()
        if self._heartbeat_every > 0:
            self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
            self._thread.start()

    def metrics(self, step: int, values: dict[str, float], progress: bool = True) -> None:
        """Several metrics at one agent step, as one event. progress=False: the step is on an
        axis of its own, not the budget's (TD3's phase-I trials), so it says nothing of progress."""
        if progress:
            self.step = max(self.step, step)
        clean = {k: float(v) for k, v in values.items() if v is not None and v == v}  # drop NaN
        if clean:
            self._emit({"type": "metric", "step": int(step), "values": clean, **({} if progress else {"progress": False})})

    def heartbeat(self) -> None:
        self._emit({"type": "heartbeat", "step": self.step, "next": time.time() + self._promise})

    def checkpoint(self, step: int, save: Callable[[Path], None]) -> Path:
        """`save(tmp_path)` writes the file; it is renamed into place, then announced."""
        rel = checkpoint_name(step)
        target = self.run_dir / rel
        atomic.write_with(target, save, suffix=".zip")
        self._emit({"type": "checkpoint", "step": int(step), "path": rel, "sha256": atomic.sha256(target)})
        return target

    def note(self, kind: str, **fields) -> None:
        """An event for readers of the log (e.g. a training phase switch); ingest skips it."""
        self._emit({"type": kind, "step": self.step, **fields})

    def artifact(self, kind: str, rel_path: str) -> None:
        """Announce a file the worker wrote (already renamed into place) for the registry."""
        self._emit({"type": "artifact", "kind": kind, "path": rel_path})

    @property
    def finished(self) -> bool:
        return self.final is not None

    def finish(self, status: str, error: str | None = None) -> None:
        self.final = status
        self._stop.set()
        self.status(status, error=error, step=self.step, **({"outcome": self.outcome} if self.outcome else {}))

    def _beat(self) -> None:
        while not self._stop.wait(self._heartbeat_every):
            self.heartbeat()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
        os.close(self._fd)


def read_run_file(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / RUN_FILE).read_text())


def write_run_file(run_dir: Path, spec: dict) -> None:
    atomic.write_json(Path(run_dir) / RUN_FILE, spec)
