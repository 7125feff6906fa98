"""The whole workflow through the CLI: train -> eval --all-checkpoints -> report -> watch -> export,
and Ctrl-C then --resume. Real sb3-contrib training with tiny budgets."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlmodel import Session, select

from neurorl_cli.home import find_home
from neurorl_cli.registry import db
from neurorl_cli.registry.models import Artifact, Checkpoint, Evaluation, Metric, Run, Trial

from .conftest import cli

pytestmark = pytest.mark.slow


def test_train_eval_report_watch_export(trained_copy, tmp_path):
    trained = trained_copy
    engine = db.open_registry(find_home())
    with Session(engine) as session:
        runs = session.exec(select(Run)).all()
        assert sorted(r.seed for r in runs) == [0, 1] and {r.status for r in runs} == {"completed"}
        for run in runs:
            steps = [c.step for c in session.exec(select(Checkpoint).where(Checkpoint.run_id == run.id))]
            assert steps[:2] == [512, 1024]
            keys = set(session.exec(select(Metric.key).where(Metric.run_id == run.id)))
            assert {"perf/trial_performance", "train/steps_per_s", "loss/value_loss"} <= keys
            assert run.versions["sb3-contrib"] == "2.9.2"

    # the same config and seeds again: nothing new is trained
    again = cli("train", "perceptual-decision-making", "recurrent-ppo", "--seeds", "0-1", "--steps", "1024",
                "--checkpoint-every", "512", "--set", "model.n_steps=64", "--set", "model.batch_size=64",
                "--set", "model.lstm_hidden_size=32", home=trained, check=True)
    assert again.stdout.count("not trained again") == 2

    cli("eval", "tiny", "--all-checkpoints", "--trials", "50", home=trained, check=True)
    with Session(engine) as session:
        evals = session.exec(select(Evaluation).where(Evaluation.trials == 50)).all()
        assert len(evals) == 4
        trials = session.exec(select(Trial).where(Trial.evaluation_id == evals[0].id)).all()
        assert len(trials) == 50 and all("coh" in t.conditions for t in trials)

    out = tmp_path / "report"
    report = cli("report", "tiny", "--out", str(out), home=trained, check=True)
    assert str(out / "index.html") in report.stdout
    html = (out / "index.html").read_text()
    assert "perceptual-decision-making" in html
    assert list(out.glob("*.png")) and list(out.glob("*.svg")) and list(out.glob("*.csv"))

    gif = tmp_path / "trial.gif"
    cli("watch", f"r{runs[0].id}", "--checkpoint", "best", "--gif", str(gif), home=trained, check=True)
    assert gif.read_bytes()[:6] in (b"GIF89a", b"GIF87a")

    table = tmp_path / "trials.csv"
    cli("export", f"r{runs[0].id}", "--trials", str(table), home=trained, check=True)
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 2 * 50  # 2 checkpoints x 50 trials
    assert {"seed", "checkpoint_step", "protocol", "choice", "ground_truth", "coh"} <= set(rows[0])
    with Session(engine) as session:
        kinds = set(session.exec(select(Artifact.kind)))
    assert kinds


def test_ctrl_c_cancels_then_resume_continues(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("NEURORL_HOME", str(home))
    env = {**os.environ, "NEURORL_HOME": str(home)}
    command = ["train", "go-no-go", "recurrent-ppo", "--steps", "1024", "--checkpoint-every", "256",
               "--set", "model.n_steps=64", "--set", "model.batch_size=64", "--set", "model.lstm_hidden_size=16",
               "--set", "model.n_epochs=2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "neurorl_cli", *command],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list(home.glob("runs/*/checkpoints/step_*.zip")):
        time.sleep(0.2)
    assert list(home.glob("runs/*/checkpoints/step_*.zip")), "no checkpoint appeared"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout.decode() + stderr.decode()
    listing = json.loads(cli("runs", "list", "--json", home=home, check=True).stdout)
    assert listing[0]["status"] == "cancelled"
    run_id = listing[0]["ref"]
    # Training the stopped run's seed again makes a new run, and says how to go on with the old one.
    again = cli(*command, home=home, check=True)
    assert f"already has run {run_id} (cancelled)" in again.stderr and f"neurorl train --resume {run_id}" in again.stderr
    resumed = cli("train", "--resume", run_id, home=home)
    assert resumed.returncode == 0, resumed.stderr
    shown = json.loads(cli("runs", "show", run_id, "--json", home=home, check=True).stdout)
    assert shown["status"] == "completed" and shown["attempt"] == 2 and shown["steps"] >= 1024
    steps = [c["step"] for c in shown["checkpoints"]]
    assert steps == sorted(set(steps)) and steps[-1] >= 1024
    first = [c["step"] for c in shown["checkpoints"] if c["attempt"] == 1]
    engine = db.open_registry(find_home())
    with engine.connect() as conn:
        resumed_from = conn.exec_driver_sql(
            "SELECT MIN(step) FROM metric WHERE run_id = ? AND attempt = 2", (int(run_id.removeprefix("r")),)).scalar()
    assert first and resumed_from > max(first)  # attempt 2 continued from the last checkpoint
    assert cli("train", "--resume", run_id, home=home).returncode == 2  # completed runs do not resume
