"""Slurm dispatch through submitit (and the same code path on submitit's local executor).

Each worker is one job (a Slurm array when several are submitted at once): one run, or a seed
group trained in one process (one array task per group). The job runs `WorkerJob`, which only
starts the worker on the run directories, in a container when asked, and stops it cleanly when
the scheduler says so:

- SIGTERM (scancel, preemption) reaches the worker, which saves a final checkpoint and
  ends `cancelled`;
- submitit's time-limit/preemption signal (USR2) does the same, then the job is requeued:
  the requeued job writes a `queued` event for the next attempt, and its worker continues
  from the last checkpoint.

The CLI stays the registry's one writer: it ingests run logs while it waits, and reconciles
what the logs say with what the scheduler says (squeue/scontrol, or sacct when accounting
runs), since submitit's own states come from sacct and are UNKNOWN without it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from sqlalchemy import Engine
from sqlmodel import Session
from submitit.helpers import Checkpointable

from neurorl_cli.registry.ingest import finish_unfinished, ingest
from neurorl_cli.registry.models import FINISHED, Run
from neurorl_cli.runlog import RunLog, read_run_file
from neurorl_cli.launch import progress as bars_
from neurorl_cli.launch.local import WORKER_LOG, _tail
from neurorl_cli.launch.profile import Resources

POLL = 1.0  # seconds between ingests while jobs run
SCHEDULER_POLL = 10.0  # seconds between squeue calls (a busy controller does not like more)
# Scheduler states in which a job will (again) start a worker.
WAITING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "RESV_DEL_HOLD", "SUSPENDED"}
ACTIVE = WAITING | {"RUNNING", "COMPLETING", "RESIZING", "STAGE_OUT", "SIGNALING"}
# A job in one of these states is over; a run it left unfinished did not report its end.
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
         "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT", "GONE", "FINISHED", "INTERRUPTED"}


# -- the job -----------------------------------------------------------------------------


def apptainer() -> str | None:
    return shutil.which("apptainer") or shutil.which("singularity")


def _dirs(run_dirs: str | list[str]) -> list[str]:
    """A job's run directories: one (a plain string, as jobs were submitted before seed groups)
    or a seed group's."""
    return [run_dirs] if isinstance(run_dirs, str) else list(run_dirs)


def worker_command(run_dirs: str | list[str], container: str | None, nv: bool = True, engine: str = "apptainer") -> list[str]:
    dirs = _dirs(run_dirs)
    if container is None:
        return [sys.executable, "-m", "neurorl_cli.worker", *dirs]
    binds = [arg for d in dirs for arg in ("--bind", d)]
    return [engine, "exec", *(["--nv"] if nv else []), *binds, container, "python", "-m", "neurorl_cli.worker", *dirs]


class WorkerJob(Checkpointable):
    """What a submitit job runs: the worker on one run directory or a seed group's (picklable;
    no registry)."""

    def __init__(self, container: str | None = None, digest: str | None = None, nv: bool = True):
        self.container = container
        self.digest = digest
        self.nv = nv
        self._proc: subprocess.Popen | None = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_proc"] = None  # a running process does not travel in the requeue pickle
        return state

    def __call__(self, run_dirs: str | list[str]) -> int:
        env = dict(os.environ)
        engine = "apptainer"
        if self.container:
            engine = apptainer()
            if engine is None:
                self._fail(run_dirs, f"--container {self.container}: neither apptainer nor singularity is on PATH on {os.uname().nodename}")
                return 1
            from neurorl_cli.provenance import CONTAINER_DIGEST_ENV, CONTAINER_IMAGE_ENV

            env[CONTAINER_IMAGE_ENV] = self.container
            if self.digest:
                env[CONTAINER_DIGEST_ENV] = self.digest
        with open(Path(_dirs(run_dirs)[0]) / WORKER_LOG, "ab") as log:
            self._proc = subprocess.Popen(worker_command(run_dirs, self.container, self.nv, engine), stdout=log,
                                          stderr=subprocess.STDOUT, env=env)
        # SIGTERM reaches this process first under submitit's local executor, and only it under
        # some Slurm setups: pass it on (the worker ignores a second one).
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._forward)
        # Polling, not Popen.wait(): a blocking wait holds the lock that the time-limit handler
        # (checkpoint, run inside this frame) needs to see the worker end.
        while self._proc.poll() is None:
            time.sleep(0.2)
        return self._proc.returncode

    def _forward(self, signum, frame) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)

    def checkpoint(self, run_dirs: str | list[str]):
        """Time limit or preemption (submitit's USR2): final checkpoint, then requeue."""
        from neurorl_cli.worker import STOP_GRACE, scan

        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            deadline = time.time() + STOP_GRACE + 5
            while self._proc.poll() is None and time.time() < deadline:
                time.sleep(0.1)
            if self._proc.poll() is None:
                self._proc.kill()
        for run_dir in _dirs(run_dirs):
            spec = read_run_file(Path(run_dir))
            started, _, _ = scan(Path(run_dir))
            log = RunLog(Path(run_dir), attempt=max(spec["attempt"], started) + 1, heartbeat_every=0)
            log.status("queued", error="requeued by the scheduler (time limit or preemption)")
            log.close()
        return super().checkpoint(run_dirs)

    @staticmethod
    def _fail(run_dirs: str | list[str], why: str) -> None:
        for run_dir in _dirs(run_dirs):
            spec = read_run_file(Path(run_dir))
            log = RunLog(Path(run_dir), attempt=spec["attempt"], heartbeat_every=0)
            log.finish("failed", error=why)
            log.close()


# -- the scheduler's view ------------------------------------------------------------------


def _run(cmd: list[str]) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def slurm_states(job_ids: list[str]) -> dict[str, str]:
    """Job id -> state, from squeue, then sacct (when accounting runs), then scontrol.

    A job none of them knows is GONE (finished long enough ago to be forgotten); when squeue
    itself fails, nothing is said about anyone (a controller hiccup is not a verdict)."""
    if not job_ids:
        return {}
    mains = sorted({j.split("_")[0] for j in job_ids})
    listing = _run(["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(mains)])
    if listing is None:
        listing = _run(["squeue", "-h", "-r", "-o", "%i|%T"])  # an unknown id makes squeue -j fail
        if listing is None:
            return {}
    states: dict[str, str] = {}
    for line in listing.splitlines():
        jid, _, state = line.strip().partition("|")
        states[jid] = state.split()[0] if state else "UNKNOWN"
    missing = [j for j in job_ids if j not in states]
    if missing:
        accounted = _run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(sorted({j.split("_")[0] for j in missing}))])
        for line in (accounted or "").splitlines():
            jid, _, state = line.strip().partition("|")
            if jid in missing:
                states[jid] = state.split()[0] if state else "UNKNOWN"
    for jid in [j for j in job_ids if j not in states]:
        shown = _run(["scontrol", "-o", "show", "job", jid])
        state = None
        for field in (shown or "").split():
            if field.startswith("JobState="):
                state = field.removeprefix("JobState=")
        states[jid] = state or "GONE"
    return states


# -- the dispatcher ------------------------------------------------------------------------


class SubmititDispatcher:
    """Submit runs as submitit jobs, then wait with progress bars, ingesting and reconciling."""

    def __init__(self, engine: Engine, cluster: str, resources: Resources, device: str, console: Console,
                 folder: Path, jobs: int = 1, digest: str | None = None):
        assert cluster in ("slurm", "local")
        self.engine = engine
        self.cluster = cluster
        self.res = resources
        self.device = device
        self.console = console
        self.folder = folder
        self.jobs = max(1, jobs)
        self.digest = digest
        self._submitted: dict[int, object] = {}  # run id -> submitit job
        self._sched: dict[str, str] = {}
        self._sched_at = 0.0

    def executor(self):
        import submitit

        ex = submitit.AutoExecutor(folder=self.folder / "%j", cluster=self.cluster)
        params = dict(name="neurorl", timeout_min=self.res.time_min, cpus_per_task=self.res.cpus,
                      mem_gb=self.res.mem, gpus_per_node=self.res.gpus)
        if self.cluster == "slurm":
            extra = dict(self.res.sbatch)
            params.update(slurm_partition=self.res.partition, slurm_account=self.res.account,
                          slurm_qos=self.res.qos, slurm_array_parallelism=self.res.array_parallelism,
                          slurm_setup=self.res.setup or None, slurm_additional_parameters=extra or None)
        elif self.res.setup:
            params["local_setup"] = self.res.setup
        ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
        return ex

    def _job(self) -> WorkerJob:
        return WorkerJob(self.res.container, self.digest, nv=self.device != "cpu")

    def submit(self, groups: list[list[Run]]) -> dict[int, str]:
        """Submit one job per group (one array on Slurm); returns run id -> job id."""
        ex = self.executor()
        args = [group[0].run_dir if len(group) == 1 else [r.run_dir for r in group] for group in groups]
        if len(groups) == 1 or self.cluster == "slurm":
            jobs = ex.map_array(self._job(), args)
        else:
            jobs = [ex.submit(self._job(), arg) for arg in args]
        ids = {}
        for group, job in zip(groups, jobs):
            for run in group:
                self._submitted[run.id] = job
                ids[run.id] = job.job_id
        self._store_job_ids(ids)
        return ids

    def _store_job_ids(self, ids: dict[int, str]) -> None:
        with Session(self.engine) as session:
            for rid, jid in ids.items():
                row = session.get(Run, rid)
                row.job_id = jid
                session.add(row)
            session.commit()

    def _states(self) -> dict[int, str]:
        """Run id -> its job's state, for submitted runs."""
        if self.cluster == "local":
            return {rid: job.state for rid, job in self._submitted.items()}
        if time.time() - self._sched_at >= SCHEDULER_POLL:
            self._sched = slurm_states([job.job_id for job in self._submitted.values()])
            self._sched_at = time.time()
        return {rid: self._sched.get(job.job_id, "UNKNOWN") for rid, job in self._submitted.items()}

    def run(self, groups: list[list[Run]], total_steps: dict[int, int], wait: bool = True) -> dict[int, str]:
        """Submit, then (unless told not to) wait until every run has finished."""
        runs = [run for group in groups for run in group]
        ids = [r.id for r in runs]
        by_id = {r.id: r for r in runs}
        pending = list(groups)
        # The local executor runs every submitted job at once: keep --jobs of them going.
        batch = len(pending) if self.cluster == "slurm" or not wait else self.jobs
        self.submit(pending[:batch])
        pending = pending[batch:]
        if not wait:
            return {rid: "queued" for rid in ids}
        progress, tasks = bars_.bars(self.console, runs, total_steps)
        try:
            with progress:
                lingering: dict[int, float] = {}
                while True:
                    time.sleep(POLL)
                    state = ingest(self.engine, ids)
                    jobs = self._states()
                    self._reconcile(state, jobs, by_id)
                    if pending:
                        busy = len({self._submitted[rid].job_id for rid in self._submitted
                                    if state[rid].status not in FINISHED or jobs.get(rid) in ACTIVE})
                        if busy < self.jobs:
                            take, pending = pending[: self.jobs - busy], pending[self.jobs - busy :]
                            self.submit(take)
                    bars_.show(progress, tasks, state, {rid: jobs.get(rid, "") for rid in ids})
                    if pending:
                        continue
                    unfinished = [rid for rid in ids if state[rid].status not in FINISHED]
                    if unfinished:
                        continue
                    # Every run reported its end; wait for the jobs too (one may be requeuing), a while.
                    now = time.time()
                    still = [rid for rid in ids if jobs.get(rid) in ACTIVE]
                    for rid in still:
                        lingering.setdefault(rid, now)
                    if not still or all(now - lingering[rid] > 30 for rid in still):
                        break
        except KeyboardInterrupt:
            self.cancel(ids)
            raise
        return {rid: p.status for rid, p in ingest(self.engine, ids).items()}

    def _reconcile(self, state: dict, jobs: dict[int, str], by_id: dict[int, Run]) -> None:
        for rid, job_state in jobs.items():
            status = state[rid].status
            if status in ("cancelled", "crashed") and job_state in WAITING:
                # The scheduler requeued the job: the run waits for its next attempt.
                self._set(rid, "queued", "requeued by the scheduler")
                state[rid].status = "queued"
            elif status not in FINISHED and job_state in ENDED:
                state.update(ingest(self.engine, [rid]))  # the worker may have just written its end
                if state[rid].status in FINISHED:
                    continue
                why = self._why(rid, by_id[rid], job_state)
                new = "crashed" if status == "running" else "failed"
                finish_unfinished(self.engine, [rid], new, why)
                state[rid].status = new

    def _why(self, rid: int, run: Run, job_state: str) -> str:
        job = self._submitted[rid]
        tail = _tail(Path(run.run_dir) / WORKER_LOG)
        if not tail:
            try:
                tail = " | ".join((job.stderr() or "").strip().splitlines()[-3:])
            except Exception:  # noqa: BLE001  (a log we cannot read only costs detail)
                tail = ""
        return (f"job {job.job_id} ended ({job_state}) before its worker reported an end"
                + (f": {tail}" if tail else ""))[-2000:]

    def _set(self, rid: int, status: str, error: str) -> None:
        with self.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE run SET status = ?, error = ?, ended = NULL, heartbeat = NULL WHERE id = ?",
                                 (status, error, rid))

    def cancel(self, ids: list[int]) -> None:
        """Ctrl-C: cancel the jobs (the workers get SIGTERM and save), then mark what stayed silent."""
        for job in self._submitted.values():
            try:
                job.cancel(check=False)
            except Exception:  # noqa: BLE001  (a job that ended meanwhile)
                pass
        from neurorl_cli.worker import STOP_GRACE

        deadline = time.time() + STOP_GRACE + 5
        while time.time() < deadline:
            state = ingest(self.engine, ids)
            if all(p.status in FINISHED for p in state.values()):
                break
            time.sleep(0.5)
        finish_unfinished(self.engine, ids, "cancelled", "cancelled by Ctrl-C")


def reconcile_detached(engine: Engine) -> None:
    """Runs submitted with --no-wait: a Slurm job that ended without its worker reporting.

    (A cancelled run whose job the scheduler requeued turns `queued`, then `running`, from
    the events its next attempt writes.)"""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT id, job_id, status FROM run WHERE launcher = 'slurm' AND job_id IS NOT NULL "
            "AND status IN ('queued', 'running')").fetchall()
        conn.rollback()
    if not rows or shutil.which("squeue") is None:
        return
    states = slurm_states([r[1] for r in rows])
    for rid, jid, status in rows:
        if states.get(jid) in ENDED:
            ingest(engine, [rid])  # the worker may have written its end since
            finish_unfinished(engine, [rid], "crashed" if status == "running" else "failed",
                              f"job {jid} ended ({states[jid]}) before its worker reported an end")
