"""The firefly trainer's options that follow the study's own code (ryzhang1/Inductive_bias):
replay drawn from a random tenth of the buffer without replacement, and the phase-II switch on
disjoint 100-trial blocks. Left out of a model, the trainer's earlier rules hold."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from neurorl_cli import catalog
from neurorl_cli.engines.native.td3 import PhaseTwoRule, TD3Backend, TrajectoryReplay
from neurorl_cli.interfaces import RunConfig
from neurorl_cli.runlog import RunLog


def test_phase_two_on_a_sliding_window_or_on_disjoint_blocks():
    window = PhaseTwoRule(0.2, blocks=False)
    assert not window.add([1.0] * 99) and window.add([0.0])  # 99 of the last 100 rewarded
    blocks = PhaseTwoRule(0.2, blocks=True)
    batch = [1.0] * 4 + [0.0] * 12  # batches of 16 trials, as the trainer collects them
    assert not any(blocks.add(batch) for _ in range(6))  # 96 trials: no whole block yet
    assert blocks.add(batch) and blocks.last_block == 0.28  # trials 1-100: 24 + 4 rewarded
    strict = PhaseTwoRule(0.2, blocks=True)
    assert not strict.add([1.0] * 20 + [0.0] * 80)  # exactly 0.2 is not above it
    assert strict.add([1.0] * 21 + [0.0] * 79)
    # rewarded trials that straddle two blocks: a sliding window passes, no disjoint block does
    straddle = [0.0] * 60 + [1.0] * 30 + [0.0] * 20 + [1.0] * 30 + [0.0] * 60
    assert not PhaseTwoRule(0.5, blocks=True).add(straddle)
    sliding = PhaseTwoRule(0.5, blocks=False)
    assert any(sliding.add([x]) for x in straddle)


def test_replay_from_a_random_tenth_without_replacement():
    replay = TrajectoryReplay(1_000, torch.Generator().manual_seed(0))
    for i in range(200):
        length = 5 if i % 2 else 7
        replay.add({"obs": torch.full((length, 3), float(i)), "id": torch.full((length,), i)})
    for _ in range(50):
        batch = replay.sample(16, tenth=True)
        ids = batch["id"][0].tolist()
        assert len(ids) <= 20 and len(set(ids)) == len(ids)  # from 20 trajectories, none twice
        assert batch["obs"].shape[0] in (5, 7)  # one length
    full = replay.sample(16)
    assert full["id"].shape[1] == 16  # the trainer's own rule: always a full batch


def test_td3_trains_under_the_studys_options():
    (config,) = catalog.resolve(catalog.load_task("firefly"), catalog.load_model("td3-modular"),
                                ["model.warmup_trials=16", "model.replay_period=32", "model.replay_draw=tenth",
                                 "model.phase2_rule=blocks", "model.max_trials_in_all=64"], trials=32, checkpoint_every=32)
    assert config["model"]["hyper"]["replay_draw"] == "tenth"
    with tempfile.TemporaryDirectory() as tmp:
        run = RunConfig(run_id=1, seed=0, attempt=1, config=config, run_dir=tmp, device="cpu", threads=1)
        log = RunLog(Path(tmp), heartbeat_every=0)
        TD3Backend().train(run, log)
        assert log.outcome and "64 trials in all" in log.outcome


class _MoveThenStop(torch.nn.Module):
    """Drives straight for three steps, then stops: rewarded only where the reward zone is wide."""

    def forward(self, x, state=None):
        t = 0 if state is None else state
        action = torch.tensor([0.8, 0.0]) if t < 3 else torch.zeros(2)
        return action.expand(*x.shape[:2], 2), t + 1


def test_phase_three_judged_at_gain_one_or_under_any_condition():
    """phase3_rule "any-condition" (the study's): the best rewarded fraction over the task's
    protocol conditions decides; left out, gain 1 alone. A condition whose reward zone is wide
    enough that any stop pays shows which one was read."""
    from neurorl_cli.engines.native.td3 import TD3, Hyper, validate

    (config,) = catalog.resolve(catalog.load_task("firefly"), catalog.load_model("td3-modular"), [])
    config["task"]["protocols"] = {"gain1x": {"trials": 50, "seed": 1, "kwargs": {}},
                                   "wide": {"trials": 50, "seed": 1, "kwargs": {"goal_radius": 5000.0}}}  # cm
    for rule in (None, "any-condition"):
        agent = TD3(Hyper(**config["model"]["hyper"], phase3_rule=rule), "cpu")
        agent.actor = _MoveThenStop()
        result = validate(agent, config, 50, "cpu")
        assert result["reward_fraction"] < 0.5
        assert result["phase3_fraction"] == (1.0 if rule else result["reward_fraction"])
