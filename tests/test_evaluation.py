"""Evaluation carries the recurrent state, fills only missing cells, and survives damaged files."""

from __future__ import annotations

from sqlmodel import Session, select

from neurorl_cli.families.neurogym.rollout import rollout
from neurorl_cli.home import find_home
from neurorl_cli.registry import db
from neurorl_cli.registry.models import Checkpoint, Evaluation, Run

from .conftest import cli


def test_evaluation_carries_the_recurrent_state():
    """A real sb3-contrib LSTM policy whose action head is scaled up so that its hidden state
    decides: the same rollout twice gives the same trials; starting the state afresh at every
    step changes them. (A briefly trained policy may ignore its state, proving nothing.)"""
    import torch
    from sb3_contrib import RecurrentPPO

    from neurorl_cli import catalog
    from neurorl_cli.engines.sb3.trainer import SB3Policy, make_vec_env

    (config,) = catalog.resolve(catalog.load_task("perceptual-decision-making"), catalog.load_model("recurrent-ppo"))
    model = RecurrentPPO("MlpLstmPolicy", make_vec_env(config["task"], 0, 1), seed=0, policy_kwargs={"lstm_hidden_size": 32})
    with torch.no_grad():
        model.policy.action_net.weight.mul_(1000)
        model.policy.lstm_actor.weight_hh_l0.mul_(10)
    policy = SB3Policy(model, recurrent=True)
    env = config["task"]["env"]
    carried = rollout(policy, env, 200, seed=42)
    again = rollout(policy, env, 200, seed=42)
    forgetful = rollout(policy, env, 200, seed=42, carry_state=False)
    key = lambda r: [(t["choice"], t["steps"]) for t in r.trials]  # noqa: E731
    assert key(carried) == key(again)
    assert key(carried) != key(forgetful)


def test_eval_fills_missing_cells_once_and_reports_damage(trained_copy):
    home = trained_copy
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
    shown = cli("runs", "show", f"r{run.id}", home=home)
    assert "best under 'default'" in shown.stdout
