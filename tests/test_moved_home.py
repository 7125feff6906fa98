"""Moving NEURORL_HOME, or the runs root NEURORL_RUNS, with its runs keeps every run readable:
paths are stored relative to the runs root; an old registry's absolute ones are converted."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pandas as pd
import pytest

from neurorl_cli.home import find_home
from neurorl_cli.registry import db

from .conftest import cli

TRAIN = ["train", "go-no-go", "recurrent-ppo", "--steps", "768", "--checkpoint-every", "256",
         "--set", "model.n_steps=32", "--set", "model.batch_size=32",
         "--set", "model.lstm_hidden_size=16", "--set", "model.n_epochs=1"]


def _show(home) -> dict:
    return json.loads(cli("runs", "show", "r1", "--json", home=home, check=True).stdout)


@pytest.mark.slow
def test_moved_home_then_moved_runs_root_keep_the_run_whole(tmp_path, monkeypatch):
    home = tmp_path / "before" / "home"
    env = {**os.environ, "NEURORL_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "neurorl_cli", *TRAIN], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(home.glob("runs/*/checkpoints/step_*.zip")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: cancelled after a checkpoint, so it can resume
    proc.communicate(timeout=60)
    before = _show(home)
    assert before["status"] == "cancelled" and before["checkpoints"]
    con = sqlite3.connect(home / "registry.db")
    (stored,) = con.execute("SELECT run_dir FROM run").fetchone()
    con.close()
    assert not os.path.isabs(stored)

    moved = tmp_path / "after" / "home"
    moved.parent.mkdir()
    shutil.move(home, moved)
    shown = _show(moved)
    assert shown["run_dir"].startswith(str(moved)) and shown["checkpoints"] == before["checkpoints"]
    cli("eval", "r1", "--all-checkpoints", "--trials", "20", home=moved, check=True)
    assert _show(moved)["best"]  # the checkpoint files were found and verified at the new place
    cli("report", "r1", "--out", str(tmp_path / "report"), home=moved, check=True)
    assert (tmp_path / "report" / "index.html").is_file()
    cli("export", "r1", "--metrics", str(tmp_path / "m.csv"), home=moved, check=True)
    assert len(pd.read_csv(tmp_path / "m.csv"))

    # The runs root alone moves out of the home, named by NEURORL_RUNS.
    runs = tmp_path / "elsewhere" / "runs"
    runs.parent.mkdir()
    shutil.move(moved / "runs", runs)
    monkeypatch.setenv("NEURORL_RUNS", str(runs))
    assert _show(moved)["run_dir"].startswith(str(runs))
    cli("train", "--resume", "r1", home=moved, check=True)
    done = _show(moved)
    assert done["status"] == "completed" and done["attempt"] == 2
    steps = [c["step"] for c in done["checkpoints"]]
    assert steps == sorted(set(steps)) and steps[-1] >= 768
    assert set(steps) > {c["step"] for c in before["checkpoints"]}


def test_upgrade_makes_paths_under_the_runs_root_relative():
    from alembic import command

    home = find_home()
    home.root.mkdir(parents=True)
    cfg = db._alembic_config()
    engine = db._engine(home.registry)
    inside, outside = str(home.runs / "000001-abc"), "/somewhere/else/000002-def"
    with engine.begin() as conn:  # a registry made before paths were relative
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003_checkpoint_pruned")
        conn.exec_driver_sql(
            "INSERT INTO experiment (id, config_hash, task, model, config, tags, created) "
            "VALUES (1, 'h', 't', 'm', '{}', '[]', '2026-01-01 00:00:00')")
        for rid, run_dir in ((1, inside), (2, outside)):
            conn.exec_driver_sql(
                "INSERT INTO run (id, experiment_id, seed, run_hash, status, attempt, launcher, run_dir, steps_done, "
                "versions, log_offset, created) VALUES (?, 1, 0, 'r', 'completed', 1, 'local', ?, 5, '{}', 0, "
                "'2026-01-01 00:00:00')", (rid, run_dir))
        conn.exec_driver_sql(
            "INSERT INTO artifact (kind, path, query, run_id, created) VALUES ('gif', ?, 'q', 1, '2026-01-01 00:00:00')",
            (inside + "/watch.gif",))
    engine.dispose()
    db._ENGINES.clear()
    upgraded = db.open_registry(home)
    with upgraded.connect() as conn:
        assert conn.exec_driver_sql("SELECT run_dir FROM run ORDER BY id").scalars().all() == ["000001-abc", outside]
        assert conn.exec_driver_sql("SELECT path FROM artifact").scalar() == "000001-abc/watch.gif"
    from sqlmodel import Session

    from neurorl_cli.registry.models import Artifact, Run

    with Session(upgraded) as session:  # read back absolute, under today's root or as stored
        assert [session.get(Run, i).run_dir for i in (1, 2)] == [inside, outside]
        assert session.get(Artifact, 1).path == inside + "/watch.gif"
