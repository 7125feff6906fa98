"""Firefly through the CLI with a tiny budget: recurrent TD3 trains through its phases,
checkpoints, is evaluated under two protocols, and reported."""

from __future__ import annotations

import json
import sqlite3

import pytest
import torch

from neurorl_cli.backends.td3 import TrajectoryReplay, smooth_target

from .conftest import cli

pytestmark = pytest.mark.slow


def test_td3_modular_trains_evaluates_and_reports(neurorl_home):
    # Phase I ends after 100 trials whatever the success (threshold 0), so phase II runs too.
    cli("train", "firefly", "td3-modular", "--trials", "32", "--checkpoint-every", "16",
        "--set", "model.warmup_trials=16", "--set", "model.phase2_rewarded=0", check=True)
    con = sqlite3.connect(neurorl_home / "registry.db")
    run_dir, = con.execute("SELECT run_dir FROM run").fetchone()
    steps = [s for (s,) in con.execute("SELECT step FROM checkpoint ORDER BY step")]
    con.close()
    assert steps == [16, 32]
    events = [json.loads(line) for line in open(f"{run_dir}/events.jsonl")]
    assert [e["phase"] for e in events if e["type"] == "phase"] == [2]
    cli("eval", "1", "--all-checkpoints", "--protocol", "gain1x", "--protocol", "gain2x", "--trials", "50", check=True)
    con = sqlite3.connect(neurorl_home / "registry.db")
    rows = con.execute("SELECT protocol, metrics FROM evaluation").fetchall()
    con.close()
    assert sorted({p for p, _ in rows}) == ["gain1x", "gain2x"] and len(rows) == 4
    for _, metrics in rows:
        m = json.loads(metrics)
        assert 0 <= m["reward_fraction"] <= 1 and m["distance_cm"] > 0 and m["trials"] == 50
        assert {"reward_rate", "overshoot_cm", "td_error", "value_estimate"} <= set(m)
    cli("report", "1", "--out", str(neurorl_home / "rep"), check=True)
    assert (neurorl_home / "rep" / "checkpoints_gain2x.png").is_file()


def test_bad_actor_name_is_one_line(neurorl_home):
    proc = cli("train", "firefly", "td3-modular", "--set", "model.actor=Actor9")
    assert proc.returncode == 2 and "Actor9" in proc.stderr and "Actor1" in proc.stderr


def test_target_smoothing_keeps_sides():
    g = torch.Generator().manual_seed(0)
    stop = torch.tensor([[0.05, -0.02]]).repeat(2000, 1)
    move = torch.tensor([[0.12, -0.5]]).repeat(2000, 1)
    s, m = smooth_target(stop, 0.05, 0.1, g), smooth_target(move, 0.05, 0.1, g)
    assert s.abs().max() <= 0.1 and s.std(dim=0).min() > 0.01  # a stop stays a stop, with noise
    assert (m[:, 0] >= 0.1).all() and (m[:, 1] <= -0.1).all()  # each moving component keeps its side


def test_replay_batches_one_length_and_drops_the_oldest():
    replay = TrajectoryReplay(capacity=5, generator=torch.Generator().manual_seed(1))
    for length in (3, 3, 4, 4, 4, 5):
        replay.add({"obs": torch.zeros(length, 6), "action": torch.zeros(length, 2)})
    assert len(replay) == 5 and 3 in replay.by_length and len(replay.by_length[3]) == 1
    for _ in range(20):
        batch = replay.sample(8)
        assert batch["obs"].shape[1:] == (8, 6) and batch["obs"].shape[0] in (3, 4, 5)
