"""Evaluation carries the recurrent state, fills only missing cells, and survives damaged files."""

from __future__ import annotations

import sqlite3

from sqlmodel import Session, select

from neurorl_cli.backends.sb3 import SB3Backend
from neurorl_cli.evaluation import rollout
from neurorl_cli.home import find_home
from neurorl_cli.registry import db
from neurorl_cli.registry.models import Checkpoint, Evaluation, Experiment, Run

from .conftest import cli


def _latest_checkpoint(home):
    con = sqlite3.connect(home / "registry.db")
    run_dir, path, config = con.execute(
        "SELECT run.run_dir, checkpoint.path, experiment.config FROM checkpoint JOIN run ON run.id = checkpoint.run_id "
        "JOIN experiment ON experiment.id = run.experiment_id ORDER BY checkpoint.step DESC LIMIT 1"
    ).fetchone()
    import json

    return f"{run_dir}/{path}", json.loads(config)


def test_evaluation_carries_the_recurrent_state(trained):
    path, config = _latest_checkpoint(trained)
    policy = SB3Backend().load_policy(config, path)
    env = config["task"]["env"]
    carried = rollout(policy, env, 200, seed=42)
    again = rollout(policy, env, 200, seed=42)
    forgetful = rollout(policy, env, 200, seed=42, carry_state=False)
    key = lambda r: [(t["choice"], t["steps"]) for t in r.trials]  # noqa: E731
    assert key(carried) == key(again)
    assert key(carried) != key(forgetful)


def test_eval_fills_missing_cells_once_and_reports_damage(trained, tmp_path, monkeypatch):
    import shutil

    home = tmp_path / "copy"
    shutil.copytree(trained, home)
    monkeypatch.setenv("NEURORL_HOME", str(home))
    first = cli("eval", "tiny", "--all-checkpoints", "--trials", "40", home=home)
    assert first.returncode == 0, first.stderr
    engine = db.open_registry(find_home())
    with Session(engine) as session:
        n_ckpt = len(session.exec(select(Checkpoint)).all())
        evals = session.exec(select(Evaluation)).all()
        assert len(evals) == n_ckpt and all(e.trials == 40 for e in evals)
        assert all(0.0 <= e.metrics["fraction_correct"] <= 1.0 for e in evals)
    second = cli("eval", "tiny", "--all-checkpoints", "--trials", "40", home=home)
    assert second.returncode == 0 and "already" in second.stderr
    with Session(engine) as session:
        assert len(session.exec(select(Evaluation)).all()) == n_ckpt
    # A new protocol size: damage one checkpoint; the others are evaluated, the command exits 1.
    with Session(engine) as session:
        run = session.exec(select(Run)).first()
        ck = session.exec(select(Checkpoint).where(Checkpoint.run_id == run.id)).first()
        with open(f"{run.run_dir}/{ck.path}", "r+b") as fh:
            fh.write(b"garbage")
    third = cli("eval", "tiny", "--all-checkpoints", "--trials", "30", home=home)
    assert third.returncode == 1 and "damaged" in third.stderr
    with Session(engine) as session:
        assert len(session.exec(select(Evaluation).where(Evaluation.trials == 30)).all()) == n_ckpt - 1
    best = cli("eval", "tiny", "--best", home=home)
    assert best.returncode == 0 and "best fraction_correct" in best.stdout
    shown = cli("runs", "show", str(run.id), home=home)
    assert "best under 'default'" in shown.stdout
