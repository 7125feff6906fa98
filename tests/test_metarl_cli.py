"""Meta-RL through the CLI: real training with tiny budgets, evaluation, report, watch, and pairs."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
import torch


from .conftest import cli, resume_in, stored_path
from .learning import GROUP, TWO_STEP_EVAL_TRIALS, harlow_group, harlow_group_learned, two_step_group, two_step_learned

pytestmark = pytest.mark.slow


def _best(home, protocol):
    con = sqlite3.connect(home / "registry.db")
    rows = con.execute("SELECT metrics FROM evaluation WHERE protocol = ? ORDER BY score DESC", (protocol,)).fetchall()
    con.close()
    return json.loads(rows[0][0])


def test_harlow_meta_learns_held_out_objects(neurorl_home):
    # Four seeds of 75k episodes each (about 10 s a seed): most must beat, on trials 2-5 of
    # held-out objects, an agent that only counts sides (trial 6 it answers for free).
    # bench/learning_tests.py measures how often this holds over 10 seed groups.
    rows = harlow_group(cli, f"0-{GROUP - 1}", neurorl_home)
    assert len(rows) == GROUP and all(r["trials"] == 1200 for r in rows)
    assert harlow_group_learned(rows), rows
    # The first trial cannot be known: chance over the group's 800 held-out episodes.
    assert abs(np.mean([r["accuracy_trial_1"] for r in rows]) - 0.5) < 0.1, rows

    report = cli("report", "harlow-group", "--out", str(neurorl_home / "rep"), check=True)
    page = (neurorl_home / "rep" / "index.html").read_text()
    for name in ("accuracy_by_position_held-out.png", "accuracy_by_position_training_held-out.png",
                 "state_pca_held-out.png", "training_curve.png"):
        assert (neurorl_home / "rep" / name).stat().st_size > 1000, report.stdout
    assert "Reward x transition" not in page and "accuracy by trial position" in page

    gif = neurorl_home / "w.gif"
    cli("watch", "r1", "--gif", str(gif), check=True)
    import imageio.v3 as iio

    frames = iio.imread(gif, index=None)
    assert frames.shape[0] >= 17  # every step of the 6 trials


def test_resume_continues_the_same_stream(neurorl_home, tmp_path):
    """A run stopped after its first checkpoint and resumed ends with the same weights as one
    trained straight through (optimizer, random streams and counters are in the checkpoint)."""
    args = ["train", "two-step", "meta-a2c-lstm", "--trials", "25600", "--checkpoint-every", "12800",
            "--set", "model.episodes_per_update=64"]
    cli(*args, check=True)
    con = sqlite3.connect(neurorl_home / "registry.db")
    run_dir = stored_path(neurorl_home, con.execute("SELECT run_dir FROM run WHERE id = 1").fetchone()[0])
    con.close()
    from pathlib import Path

    ckpts = sorted((Path(run_dir) / "checkpoints").glob("*.zip"))
    assert [p.name for p in ckpts] == ["step_000000012800.zip", "step_000000025600.zip"]
    straight = torch.load(ckpts[-1], weights_only=True)

    # Same config from the first checkpoint, as the worker resumes it.
    resume_in(run_dir, ckpts[0], tmp_path / "resumed")
    resumed = torch.load(tmp_path / "resumed" / "checkpoints" / ckpts[-1].name, weights_only=True)
    assert resumed["counts"] == straight["counts"]
    for key, value in straight["net"].items():
        assert torch.equal(value, resumed["net"][key]), key


def test_two_step_agents_become_model_based(neurorl_home):
    """Four seeds at the catalog's budget and model defaults: most show the model-based stay
    pattern (tests/learning.py; bench/learning_tests.py two-step measures how often)."""
    rows = two_step_group(cli, f"0-{GROUP - 1}", neurorl_home)
    config = json.loads(cli("runs", "show", "r1", "--json", check=True).stdout)["config"]
    assert config["model"]["hyper"]["learning_rate"] == 0.01  # the task's model_defaults
    assert config["model"]["hyper"]["episodes_per_update"] == 128
    assert len(rows) == GROUP and all(r["trials"] == int(TWO_STEP_EVAL_TRIALS) for r in rows)
    assert two_step_learned(rows), rows
    cli("report", "two-step-group", "--out", str(neurorl_home / "rep"), check=True)
    assert (neurorl_home / "rep" / "stay_probabilities_test.png").is_file()
    # --set on top of the task's defaults wins
    cli("train", "two-step", "meta-a2c-lstm", "--trials", "128", "--set", "model.learning_rate=0.002", check=True)
    con = sqlite3.connect(neurorl_home / "registry.db")
    lrs = [json.loads(c)["model"]["hyper"]["learning_rate"] for (c,) in con.execute("SELECT config FROM experiment ORDER BY id")]
    con.close()
    assert lrs == [0.01, 0.002]


def test_recurrent_ppo_on_harlow_and_meta_a2c_on_neurogym(neurorl_home):
    cli("train", "harlow", "recurrent-ppo", "--steps", "256", "--checkpoint-every", "256",
        "--set", "model.n_steps=128", "--set", "model.batch_size=64", "--set", "model.lstm_hidden_size=16", check=True)
    cli("eval", "e1", "--all-checkpoints", "--trials", "120", check=True)
    assert 0 <= _best(neurorl_home, "held-out")["accuracy_later"] <= 1
    out = cli("watch", "r1", "--gif", str(neurorl_home / "ppo.gif"), check=True)
    assert (neurorl_home / "ppo.gif").is_file(), out.stdout

    cli("train", "perceptual-decision-making", "meta-a2c-lstm", "--steps", "2000", "--checkpoint-every", "1000",
        "--set", "model.episodes_per_update=2", "--set", "task.trials_per_episode=10", check=True)
    cli("eval", "e2", "--all-checkpoints", "--trials", "50", check=True)
    assert 0 <= _best(neurorl_home, "default")["fraction_correct"] <= 1


def test_bad_meta_rl_input_is_one_clear_line(neurorl_home):
    for args, words in [
        (["train", "harlow", "meta-a2c-lstm", "--set", "task.trials=5"], "even"),
        (["train", "harlow", "meta-a2c-lstm", "--set", "task.pool=validation"], "pool"),
        (["train", "harlow", "meta-a2c-lstm", "--set", "model.hidden_size=-3"], "hidden_size"),
        (["train", "harlow", "distributional-td"], "cue-reward schedule"),
        (["train", "conditioning-fixed", "meta-a2c-lstm"], "batched episodes"),
    ]:
        proc = cli(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert words in proc.stderr, (args, proc.stderr)
        assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert not (neurorl_home / "runs").exists()  # nothing was stored
