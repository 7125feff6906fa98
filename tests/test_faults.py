"""What clusters do to jobs, for real: SIGKILL, SIGTERM, requeues, kills mid-write and mid-ingest,
many commands at once, a registry on NFS."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neurorl_cli.errors import UserError
from neurorl_cli.home import find_home
from neurorl_cli.registry import db
from neurorl_cli.registry.ingest import ingest

from .conftest import cli

# Long enough (about 3.5 s of training on this machine) to be caught in the middle.
LONG_DTD = ["conditioning-fixed", "distributional-td", "--trials", "60000", "--checkpoint-every", "2000",
            "--set", "model.hyper.predictors=2"]
FAST_HEARTBEATS = {"NEURORL_HEARTBEAT_EVERY": "0.5", "NEURORL_CRASH_GRACE": "1"}  # promise 1.5 s + grace 1 s


def _start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "neurorl_cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _events(run_dir: Path) -> list[dict]:
    out = []
    for raw in (run_dir / "events.jsonl").read_bytes().splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            pass
    return out


def _running_worker(home: Path):
    """(run dir, worker pid) once a worker has announced itself and logged a checkpoint (the
    file alone is not enough: a kill before its log line leaves it unregistered, as it should)."""
    for run_dir in sorted((home / "runs").glob("0*")):
        events = _events(run_dir) if (run_dir / "events.jsonl").is_file() else []
        if not any(e["type"] == "checkpoint" for e in events):
            continue
        for event in events:
            if event["type"] == "status" and event["status"] == "running":
                return run_dir, event["pid"]
    return None


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name: state, parent pid, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _parent(pid: int) -> int:
    return int(_stat(pid)[1])


def _show(run_id) -> dict:
    return json.loads(cli("runs", "show", f"r{run_id}", "--json", check=True).stdout)


def _metric_rows(home: Path, run_id: int) -> list[tuple]:
    con = sqlite3.connect(home / "registry.db")
    try:
        return con.execute("SELECT attempt, key, step FROM metric WHERE run_id = ?", (run_id,)).fetchall()
    finally:
        con.close()


def _assert_each_metric_once(home: Path, run_id: int, run_dir: Path) -> None:
    logged = [(e["attempt"], k, e["step"]) for e in _events(run_dir) if e["type"] == "metric" for k in e["values"]]
    rows = _metric_rows(home, run_id)
    assert sorted(rows) == sorted(logged) and len(set(rows)) == len(rows)


@pytest.mark.slow
def test_sigkill_is_crashed_within_promise_and_grace_then_resume_continues(neurorl_home, monkeypatch):
    for k, v in FAST_HEARTBEATS.items():
        monkeypatch.setenv(k, v)
    proc = _start("train", *LONG_DTD)
    run_dir, pid = _wait_for(lambda: _running_worker(neurorl_home), 60, "a checkpoint")
    os.killpg(proc.pid, signal.SIGKILL)  # the node died: worker and CLI both
    killed = time.time()
    proc.wait()
    try:
        os.kill(pid, signal.SIGKILL)  # the worker had its own session? make sure it is gone
    except ProcessLookupError:
        pass
    # Crash detection needs nobody watching the process: only the heartbeat's unkept promise.
    _wait_for(lambda: _show(1)["status"] == "crashed", 20, "the run to show crashed")
    latency = time.time() - killed
    assert latency < 1.5 + 1 + 5, latency  # promise + grace + one command's start-up
    crashed = _show(1)
    assert crashed["attempt"] == 1 and "heartbeat" in crashed["error"]
    first_ckpts = [c["step"] for c in crashed["checkpoints"]]
    assert first_ckpts and crashed["steps"] >= first_ckpts[-1]

    resumed = cli("train", "--resume", "r1")
    assert resumed.returncode == 0, resumed.stderr
    done = _show(1)
    assert done["status"] == "completed" and done["attempt"] == 2 and done["steps"] == 60000
    steps = [c["step"] for c in done["checkpoints"]]
    assert steps == sorted(set(steps)) and steps[-1] == 60000
    a1 = [s for a, _, s in _metric_rows(neurorl_home, 1) if a == 1]
    a2 = [s for a, _, s in _metric_rows(neurorl_home, 1) if a == 2]
    assert min(a2) > first_ckpts[-1] >= max(a1) - 2000  # attempt 2 began after the last checkpoint
    _assert_each_metric_once(neurorl_home, 1, run_dir)


@pytest.mark.slow
def test_sigterm_saves_a_final_checkpoint_and_cancels(neurorl_home):
    # sb3 checkpoints every 1024 steps here: a checkpoint at another step is the final one.
    proc = _start("train", "go-no-go", "recurrent-ppo", "--steps", "2048", "--checkpoint-every", "1024",
                  "--set", "model.n_steps=64", "--set", "model.batch_size=64", "--set", "model.lstm_hidden_size=16",
                  "--set", "model.n_epochs=1", "--launcher", "submitit-local")

    def started():
        for run_dir in (neurorl_home / "runs").glob("0*"):
            metrics = [e for e in _events(run_dir) if e["type"] == "metric"] if (run_dir / "events.jsonl").exists() else []
            running = [e for e in _events(run_dir) if e.get("status") == "running"] if metrics else []
            if running:
                return running[0]["pid"]
        return None

    pid = _wait_for(started, 90, "the worker's first metrics")
    os.kill(_parent(pid), signal.SIGTERM)  # scancel: the job's process passes it on to the worker
    stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 1, stdout + stderr  # the run did not complete
    shown = _show(1)
    assert shown["status"] == "cancelled" and "final checkpoint" in shown["error"]
    steps = [c["step"] for c in shown["checkpoints"]]
    assert steps and steps[-1] % 1024 != 0 and steps[-1] == shown["steps"]


@pytest.mark.slow
def test_requeue_after_time_limit_signal_continues_as_next_attempt(neurorl_home):
    proc = _start("train", *LONG_DTD, "--launcher", "submitit-local")
    run_dir, pid = _wait_for(lambda: _running_worker(neurorl_home), 60, "a checkpoint")
    os.kill(_parent(pid), signal.SIGUSR2)  # what Slurm sends before the time limit (submitit's --signal)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stdout + stderr
    shown = _show(1)
    assert shown["status"] == "completed" and shown["attempt"] == 2 and shown["steps"] == 60000
    events = _events(run_dir)
    statuses = [(e["attempt"], e["status"]) for e in events if e["type"] == "status"]
    assert statuses == [(1, "running"), (1, "cancelled"), (2, "queued"), (2, "running"), (2, "completed")]
    last_first = max(e["step"] for e in events if e["type"] == "checkpoint" and e["attempt"] == 1)
    assert min(e["step"] for e in events if e["type"] == "metric" and e["attempt"] == 2) > last_first
    _assert_each_metric_once(neurorl_home, 1, run_dir)


KILLED_WRITER = """
import sys, time
from pathlib import Path
from neurorl_cli.runlog import RunLog
log = RunLog(Path(sys.argv[1]), heartbeat_every=0)
log.checkpoint(10, lambda p: p.write_bytes(b"a whole checkpoint"))
def slow(p):
    with open(p, "wb") as fh:
        fh.write(b"half a chec")
        fh.flush()
        print("writing", flush=True)
        time.sleep(60)
log.checkpoint(20, slow)
"""


def test_kill_during_a_checkpoint_write_registers_nothing_broken():
    from sqlmodel import Session

    from neurorl_cli.registry.models import Experiment, Run
    from neurorl_cli.worker import scan

    home = find_home()
    engine = db.open_registry(home)
    run_dir = home.runs / "000001-x"
    with Session(engine) as session:
        exp = Experiment(config_hash="h" * 32, task="t", model="m", config={})
        session.add(exp)
        session.flush()
        session.add(Run(experiment_id=exp.id, seed=0, run_hash="r" * 32, run_dir=str(run_dir)))
        session.commit()
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    writer.kill()
    writer.wait()
    ingest(engine)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT step, path FROM checkpoint").fetchall()
    assert [r[0] for r in rows] == [10]
    assert not (run_dir / "checkpoints" / "step_000000000020.zip").exists()
    assert list((run_dir / "checkpoints").glob(".*.tmp*"))  # the half file never took the real name
    assert scan(run_dir)[1] == (10, rows[0][1])  # a requeued worker would resume from step 10


def test_cli_killed_during_ingest_then_the_next_command_ingests_the_rest(neurorl_home):
    from sqlmodel import Session

    from neurorl_cli.registry.models import Experiment, Run
    from neurorl_cli.runlog import RunLog

    home = find_home()
    engine = db.open_registry(home)
    n_runs, n_events, keys = 4, 25_000, [f"loss/k{i}" for i in range(10)]
    with Session(engine) as session:
        exp = Experiment(config_hash="i" * 32, task="t", model="m", config={"budget": {"steps": 1}})
        session.add(exp)
        session.flush()
        for i in range(n_runs):
            session.add(Run(experiment_id=exp.id, seed=i, run_hash=f"{i:032d}", run_dir=str(home.runs / str(i))))
        session.commit()
    for i in range(n_runs):
        log = RunLog(home.runs / str(i), heartbeat_every=0)
        for step in range(n_events):
            log.metrics(step, {k: step for k in keys})
        log.close()
    total = n_runs * n_events * len(keys)
    engine.dispose()
    db._ENGINES.clear()

    def landed() -> int:
        con = sqlite3.connect(f"file:{home.registry}?mode=ro", uri=True)
        try:
            return con.execute("SELECT COUNT(*) FROM run WHERE log_offset > 0").fetchone()[0]
        finally:
            con.close()

    proc = _start("runs", "list")
    _wait_for(lambda: landed() >= 1, 60, "the first run log to land")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = landed()
    con = sqlite3.connect(home.registry)
    rows = con.execute("SELECT COUNT(*) FROM metric").fetchone()[0]
    con.close()
    assert 1 <= partial < n_runs and 0 < rows < total  # killed in the middle
    cli("runs", "list", check=True)
    con = sqlite3.connect(home.registry)
    assert con.execute("SELECT COUNT(*) FROM metric").fetchone()[0] == total
    offsets = dict(con.execute("SELECT seed, log_offset FROM run").fetchall())
    con.close()
    assert all(offsets[i] == (home.runs / str(i) / "events.jsonl").stat().st_size for i in range(n_runs))


@pytest.mark.slow
def test_eight_commands_at_once_on_a_fresh_registry(neurorl_home):
    tiny = ["conditioning-fixed", "distributional-td", "--trials", "20", "--checkpoint-every", "10"]
    commands = [["train", *tiny, "--seeds", str(i)] for i in range(4)]
    commands += [["runs", "list", "--json"], ["runs", "matrix", "--json"], ["db", "upgrade"], ["runs", "list"]]
    procs = [_start(*c) for c in commands]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    for command, (stdout, stderr, code) in zip(commands, results):
        assert code == 0, f"{command}: {stderr}"
        assert "locked" not in stderr.lower() and "locked" not in stdout.lower()
    listing = json.loads(cli("runs", "list", "--json", check=True).stdout)
    assert sorted(r["seed"] for r in listing) == [0, 1, 2, 3]
    assert {r["status"] for r in listing} == {"completed"} and len({r["experiment"] for r in listing}) == 1


MOUNTS = """sysfs /sys sysfs rw 0 0
/dev/sda1 / ext4 rw,relatime 0 0
fileserver:/export/home /shared nfs4 rw,relatime,vers=4.2 0 0
/dev/nvme0n1 /shared/scratch\\040disk xfs rw 0 0
"""


def test_filesystem_type_reads_the_deepest_mount():
    assert db.filesystem_type(Path("/shared/lab/.neurorl"), MOUNTS) == "nfs4"
    assert db.filesystem_type(Path("/shared/scratch disk/x"), MOUNTS) == "xfs"
    assert db.filesystem_type(Path("/home/me"), MOUNTS) == "ext4"
    assert db.filesystem_type(Path("/sharedfoo"), MOUNTS) == "ext4"
    with pytest.raises(UserError, match="nfs4, a network file system"):
        db.refuse_network_fs(Path("/shared/lab/.neurorl/not-yet"), MOUNTS)
    db.refuse_network_fs(Path("/shared/scratch disk/.neurorl"), MOUNTS)  # a local disk below it: fine


def test_registry_on_nfs_is_refused_with_one_line(neurorl_home, tmp_path, monkeypatch):
    table = tmp_path / "mounts"
    table.write_text(f"/dev/sda1 / ext4 rw 0 0\nserver:/vol {tmp_path} nfs rw 0 0\n")
    monkeypatch.setenv(db.MOUNTS_ENV, str(table))
    proc = cli("runs", "list")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "on nfs" in proc.stderr and "NEURORL_HOME" in proc.stderr
    assert not (neurorl_home / "registry.db").exists()


def _alive(pid: int) -> bool:
    try:
        return _stat(pid)[0] != "Z"  # a zombie has stopped; only its parent has not reaped it yet
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_a_stop_that_cannot_print_still_stops_the_workers(neurorl_home):
    # `neurorl train ... 2>&1 | tee log` with tee gone, or a script that started it and died: the
    # stop (SIGTERM) finds its output closed, and printing the last progress fails. The workers
    # must still be stopped and their runs cancelled, not left training with no one watching.
    proc = _start("train", *LONG_DTD)
    _, pid = _wait_for(lambda: _running_worker(neurorl_home), 60, "a checkpoint")
    proc.stdout.close()
    proc.stderr.close()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    _wait_for(lambda: not _alive(pid), 30, "the worker to stop")
    shown = _show(1)
    assert shown["status"] == "cancelled" and shown["steps"] < 60000, shown
