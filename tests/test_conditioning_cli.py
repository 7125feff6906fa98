"""Distributional TD on a conditioning schedule through the CLI: train -> eval -> best, and the
simulation file the registry points to."""

from __future__ import annotations

import json

import numpy as np
from sqlmodel import Session, select

from neurorl_cli.home import find_home
from neurorl_cli.registry import db
from neurorl_cli.registry.models import Artifact, Evaluation

from .conftest import cli


def test_train_eval_best(neurorl_home):
    cli("train", "conditioning-variable", "distributional-td", "--trials", "60", "--checkpoint-every", "20",
        "--seeds", "0-1", "--name", "cv", "--set", "model.predictors=8", check=True)
    runs = json.loads(cli("runs", "list", "--json", check=True).stdout)
    assert [r["status"] for r in runs] == ["completed", "completed"]
    assert {(r["steps"], r["budget_unit"]) for r in runs} == {(60, "trials")}

    cli("eval", "cv", "--all-checkpoints", "--trials", "30", check=True)
    engine = db.open_registry(find_home())
    with Session(engine) as session:
        evals = session.exec(select(Evaluation)).all()
        assert len(evals) == 6 and not any(e.higher_is_better for e in evals)
        assert all(e.select == "abs_td_error_mean" and e.score == e.metrics["abs_td_error_mean"] for e in evals)
        (sim,) = [a for a in session.exec(select(Artifact)).all() if a.kind == "simulation" and a.run_id == runs[0]["id"]]
    best = json.loads(cli("eval", "cv", "--best", "--json", check=True).stdout)
    for row in best:  # lowest error wins under a "min" protocol
        mine = [e.score for e in evals if e.checkpoint_id in _checkpoints_of(engine, row["run"])]
        assert row["score"] == min(mine)
    with np.load(sim.path) as data:
        assert data["V"].shape[:2] == (8, 60) and data["deltas"].shape[:2] == (8, 60)


def _checkpoints_of(engine, run_id: int) -> set[int]:
    with engine.connect() as conn:
        return {r[0] for r in conn.exec_driver_sql("SELECT id FROM checkpoint WHERE run_id = ?", (run_id,))}
