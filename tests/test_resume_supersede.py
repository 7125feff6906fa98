"""A run SIGKILLed between two checkpoints, then resumed: every (key, step) shows once, from the
latest attempt, in `export --metrics` and the Python API; what the dead attempt logged past the
checkpoint the resume started from stays stored, marked superseded."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from neurorl_cli import api

from .conftest import cli

EVERY, N_STEPS = 256, 32
TRAIN = ["train", "go-no-go", "recurrent-ppo", "--steps", "1024", "--checkpoint-every", str(EVERY),
         "--set", f"model.n_steps={N_STEPS}", "--set", f"model.batch_size={N_STEPS}",
         "--set", "model.lstm_hidden_size=16", "--set", "model.n_epochs=1"]


def _events(run_dir: Path) -> list[dict]:
    out, path = [], run_dir / "events.jsonl"
    for raw in (path.read_bytes() if path.exists() else b"").splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            pass  # a line cut short by the kill
    return out


def _between_checkpoints(home: Path):
    """(worker pid, last checkpoint step) once the worker logged metrics past a checkpoint, early
    enough before the next one that a kill now lands between the two."""
    for run_dir in (home / "runs").glob("0*"):
        events = _events(run_dir)
        pids = [e["pid"] for e in events if e["type"] == "status" and e["status"] == "running"]
        checkpoints = [e["step"] for e in events if e["type"] == "checkpoint"]
        metrics = [e["step"] for e in events if e["type"] == "metric"]
        if pids and checkpoints and metrics and checkpoints[-1] < metrics[-1] <= checkpoints[-1] + EVERY // 2:
            return pids[-1], checkpoints[-1]
    return None


@pytest.mark.slow
def test_kill_between_checkpoints_then_resume_shows_each_point_once(neurorl_home, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "neurorl_cli", *TRAIN], env={**os.environ, "COLUMNS": "200"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline, found = time.time() + 120, None
    while found is None and time.time() < deadline and proc.poll() is None:
        found = _between_checkpoints(neurorl_home)
        time.sleep(0.01)
    assert found, "the worker never logged metrics between two checkpoints"
    pid, _ = found
    os.kill(pid, signal.SIGKILL)  # the worker dies; the CLI sees it and marks the run crashed
    proc.communicate(timeout=60)

    (run_dir,) = (neurorl_home / "runs").glob("0*")
    dead = _events(run_dir)
    resumed_from = max(e["step"] for e in dead if e["type"] == "checkpoint")
    orphaned = {(k, e["step"]) for e in dead if e["type"] == "metric" and e["step"] > resumed_from for k in e["values"]}
    assert orphaned, "the kill did not land between checkpoints"

    cli("train", "--resume", "r1", check=True)

    exported = tmp_path / "metrics.csv"
    cli("export", "r1", "--metrics", str(exported), check=True)
    for table in (pd.read_csv(exported), api.open().metrics("r1")):
        assert not table.duplicated(["run_id", "key", "step"]).any()
        assert set(table.loc[table["step"] > resumed_from, "attempt"]) == {2}
        assert set(table.loc[table["step"] <= resumed_from, "attempt"]) == {1}
        steps = sorted(table.loc[table["key"] == "train/steps_per_s", "step"])
        assert steps == list(range(N_STEPS, 1024 + 1, N_STEPS))  # one point per rollout, none missing

    con = sqlite3.connect(neurorl_home / "registry.db")
    stored = con.execute("SELECT key, step FROM metric WHERE attempt = 1 AND superseded").fetchall()
    con.close()
    assert set(stored) == orphaned  # kept, only hidden; nothing else hidden
    everything = api.open().metrics("r1", superseded=True)
    assert len(everything) == len(api.open().metrics("r1")) + len(orphaned)

    shown = json.loads(cli("runs", "show", "r1", "--json", check=True).stdout)
    assert [c["step"] for c in shown["checkpoints"]] == [256, 512, 768, 1024]


def test_upgrade_supersedes_what_a_resumed_run_logged_twice():
    from alembic import command

    from neurorl_cli.home import find_home
    from neurorl_cli.registry import db

    home = find_home()
    home.root.mkdir(parents=True)
    cfg = db._alembic_config()
    engine = db._engine(home.registry)
    with engine.begin() as conn:  # a registry from before: attempt 2 resumed from attempt 1's step 100
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003_checkpoint_pruned")
        conn.exec_driver_sql(
            "INSERT INTO experiment (id, config_hash, task, model, config, tags, created) "
            "VALUES (1, 'h', 't', 'm', '{}', '[]', '2026-01-01 00:00:00')")
        conn.exec_driver_sql(
            "INSERT INTO run (id, experiment_id, seed, run_hash, status, attempt, launcher, run_dir, steps_done, "
            "versions, log_offset, created) VALUES (1, 1, 0, 'r', 'completed', 2, 'local', '/x', 250, '{}', 0, "
            "'2026-01-01 00:00:00')")
        conn.exec_driver_sql(
            "INSERT INTO checkpoint (run_id, attempt, step, path, sha256, created) VALUES "
            "(1, 1, 100, 'a', 's', '2026-01-01 00:00:00'), (1, 2, 200, 'b', 's', '2026-01-01 00:00:00')")
        rows = [(1, 50), (1, 100), (1, 150), (1, 175), (2, 150), (2, 200), (2, 250)]
        conn.exec_driver_sql("INSERT INTO metric (run_id, attempt, key, step, value) VALUES (1, ?, 'k', ?, 0)", rows)
    engine.dispose()
    db._ENGINES.clear()
    upgraded = db.open_registry(home)
    with upgraded.connect() as conn:
        hidden = conn.exec_driver_sql("SELECT attempt, step FROM metric WHERE superseded ORDER BY step").fetchall()
    assert hidden == [(1, 150), (1, 175)]
    shown = api.Registry(upgraded).metrics()
    assert list(zip(shown["attempt"], shown["step"])) == [(1, 50), (1, 100), (2, 150), (2, 200), (2, 250)]


def test_a_resume_from_an_older_checkpoint_supersedes_from_there():
    """The resumed attempt's run file names its checkpoint: when the newest one was unusable and it
    started from an older one, everything the dead attempt logged past that older one is hidden."""
    from sqlmodel import Session

    from neurorl_cli.home import find_home
    from neurorl_cli.registry import db
    from neurorl_cli.registry.ingest import ingest
    from neurorl_cli.registry.models import Experiment, Run
    from neurorl_cli.runlog import RunLog, write_run_file

    home = find_home()
    engine = db.open_registry(home)
    with Session(engine) as session:
        exp = Experiment(config_hash="x" * 32, task="t", model="m", config={})
        session.add(exp)
        session.flush()
        session.add(Run(experiment_id=exp.id, seed=0, run_hash="0" * 32, run_dir=str(home.runs / "r")))
        session.commit()
    run_dir = home.runs / "r"
    first = RunLog(run_dir, attempt=1, heartbeat_every=0)
    for step in (50, 100, 150, 200, 250):
        first.metrics(step, {"k": step})
        if step % 100 == 0:
            first.checkpoint(step, lambda tmp: tmp.write_bytes(b"w"))
    first.close()
    ingest(engine)
    write_run_file(run_dir, {"attempt": 2, "run_dir": str(run_dir), "resume_from": str(run_dir / "checkpoints/step_000000000100.zip")})
    second = RunLog(run_dir, attempt=2, heartbeat_every=0)
    second.status("running")
    second.metrics(150, {"k": -150})
    second.close()
    ingest(engine)
    shown = api.Registry(engine).metrics()
    assert list(zip(shown["attempt"], shown["step"])) == [(1, 50), (1, 100), (2, 150)]
    assert len(api.Registry(engine).metrics(superseded=True)) == 6
