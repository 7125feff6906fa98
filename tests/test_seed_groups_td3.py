"""Firefly TD3 seed groups (engines/native/td3_group.py): seeds trained together as one batched
computation equal the same seeds trained alone, to float rounding, whatever phase each is in;
a seed that ends early finishes its own log while the others go on; checkpoints keep solo's
format both ways; a stop saves every unfinished seed.

Tiny settings: 25 trials a batch, so phase I (threshold 0) ends after 4 batches; few updates a
batch (replay_period 200); a budget of 50 phase-II trials, checkpoints every 25."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch

from neurorl_cli import catalog
from neurorl_cli.engines.native.td3 import TD3, Hyper, collect, make_env, make_replay
from neurorl_cli.engines.native.td3_group import GroupTD3, GroupTD3Backend as TD3Backend
from neurorl_cli.interfaces import RunConfig
from neurorl_cli.runlog import RunLog

# Batched sums round differently. Measured after ~20 updates: metrics within 1e-6, nearly every
# weight within 1e-6 of solo's; Adam amplifies the rounding of near-zero gradients into steps of
# up to its learning rate (3e-4), so a few weights in 10^5 differ by up to ~1e-4.
RTOL, ATOL = 1e-4, 1e-5
STRAY_SHARE, STRAY_MAX = 1e-4, 3e-4


def assert_close(got: list[torch.Tensor], want: list[torch.Tensor], what: str) -> None:
    """Every tensor of a net (or an optimizer's moments) taken together."""
    got, want = torch.cat([g.flatten() for g in got]), torch.cat([w.flatten() for w in want])
    diff = (got - want).abs()
    stray = diff > ATOL + RTOL * want.abs()
    assert stray.float().mean() <= STRAY_SHARE and diff.max() <= STRAY_MAX, (what, float(diff.max()), int(stray.sum()))
TINY = ["model.warmup_trials=25", "model.phase2_rewarded=0", "model.replay_period=200", "model.trials_per_batch=25",
        "model.validation_trials=20"]


# Tiny tensors: one torch thread is fastest, and keeps the tests quick on a loaded machine.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def config_for(model: str) -> dict:
    (config,) = catalog.resolve(catalog.load_task("firefly"), catalog.load_model(model), TINY, trials=50, checkpoint_every=25)
    return config


class StopAfter(RunLog):
    """A run log whose worker asks it to stop once a checkpoint at `step` is written."""

    def __init__(self, run_dir, step: int, **kwargs):
        super().__init__(run_dir, heartbeat_every=0, **kwargs)
        self.stop_at = step

    def checkpoint(self, step, save):
        path = super().checkpoint(step, save)
        if step >= self.stop_at:
            self.request_stop()
        return path


def run_config(config, tmp: Path, name: str, seed: int, attempt: int = 1, resume_from=None, device="cpu") -> RunConfig:
    return RunConfig(run_id=seed, seed=seed, attempt=attempt, config=config, run_dir=str(tmp / name), device=device,
                     resume_from=None if resume_from is None else str(resume_from))


def events(run: RunConfig) -> list[dict]:
    return [json.loads(line) for line in (Path(run.run_dir) / "events.jsonl").read_text().splitlines()]


def latest(run: RunConfig) -> Path:
    return sorted((Path(run.run_dir) / "checkpoints").glob("step_*.zip"))[-1]


def assert_same_run(solo: RunConfig, grouped: RunConfig) -> None:
    """Same phases, checkpoint steps and metrics (to float tolerance), same weights, same streams."""
    a, b = events(solo), events(grouped)
    kinds = lambda evs: [(e["type"], e.get("step"), e.get("phase")) for e in evs if e["type"] in ("phase", "checkpoint", "metric")]
    assert kinds(a) == kinds(b)
    for ea, eb in zip([e for e in a if e["type"] == "metric"], [e for e in b if e["type"] == "metric"]):
        assert ea["values"].keys() == eb["values"].keys()
        for key, value in ea["values"].items():
            if not key.endswith("trials_per_s"):
                assert eb["values"][key] == pytest.approx(value, rel=RTOL, abs=ATOL), (ea["step"], key)
    sa, sb = torch.load(latest(solo), weights_only=False), torch.load(latest(grouped), weights_only=False)
    assert sa["counts"] == sb["counts"] and sa["agent"]["updates"] == sb["agent"]["updates"] >= 3
    assert torch.equal(sa["generator"], sb["generator"]) and torch.equal(sa["rng"], sb["rng"])
    assert len(sa["replay"]) == len(sb["replay"])
    for net in ("actor", "critic", "actor_target", "critic_target"):
        assert sa["agent"][net].keys() == sb["agent"][net].keys()
        assert_close(list(sb["agent"][net].values()), list(sa["agent"][net].values()), net)
    for optim in ("actor_optim", "critic_optim"):
        oa, ob = sa["agent"][optim], sb["agent"][optim]
        assert oa["param_groups"] == ob["param_groups"] and oa["state"].keys() == ob["state"].keys()
        assert [float(s["step"]) for s in oa["state"].values()] == [float(s["step"]) for s in ob["state"].values()]
        for moment in ("exp_avg", "exp_avg_sq"):
            assert_close([s[moment] for s in ob["state"].values()], [s[moment] for s in oa["state"].values()], f"{optim} {moment}")


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


@pytest.mark.parametrize(("model", "device"), [("td3-modular", "cpu"), ("holistic-ekf", "cpu"), ("ekf-td3", "cpu"),
                                               pytest.param("td3-modular", "cuda", marks=CUDA)])
def test_a_grouped_seed_equals_the_seed_alone_in_any_phase(tmp_path, model, device, monkeypatch):
    # On a GPU both sides train there (the environment draws on the device's generator). cuDNN's
    # LSTM would round to TF32 by default where the group's products do not: off, so the test
    # measures the batching, not that rounding.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    config = config_for(model)
    backend = TD3Backend()
    on = functools.partial(run_config, config, tmp_path, device=device)
    # seed 1 alone until its first phase-II checkpoint (then stopped, as by SIGTERM)
    first = on("s1a", 1)
    backend.train(first, StopAfter(first.run_dir, 25))
    checkpoint = latest(first)
    assert torch.load(checkpoint, weights_only=False)["counts"]["phase"] == 2
    # alone: seed 1 resumed, seed 2 fresh; together: the same two in one group
    solo = [on("s1b", 1, 2, checkpoint), on("s2", 2)]
    for run in solo:
        backend.train(run, RunLog(Path(run.run_dir), attempt=run.attempt, heartbeat_every=0))
    grouped = [on("g1", 1, 2, checkpoint), on("g2", 2)]
    logs = [RunLog(Path(r.run_dir), attempt=r.attempt, heartbeat_every=0) for r in grouped]
    backend.train_group(grouped, logs)
    for alone, together in zip(solo, grouped):
        assert_same_run(alone, together)
    # seed 1 (phase II, half its budget done) ended on its own while seed 2 went on
    assert all(log.finished for log in logs)
    done_1 = [e["t"] for e in events(grouped[0]) if e["type"] == "status" and e["status"] == "completed"]
    assert len(done_1) == 1 and done_1[0] < max(e["t"] for e in events(grouped[1]) if e["type"] == "metric")
    if model == "td3-modular":
        # a group-trained checkpoint resumes alone: seed 2 at 25 trials, on to its budget
        again = on("g2b", 2, 2, sorted((Path(grouped[1].run_dir) / "checkpoints").glob("*.zip"))[0])
        backend.train(again, RunLog(Path(again.run_dir), attempt=2, heartbeat_every=0))
        assert torch.load(latest(again), weights_only=False)["counts"]["trials"] == 50


def test_a_stop_saves_every_unfinished_seed_and_the_group_resumes(tmp_path):
    config = config_for("td3-modular")
    runs = [run_config(config, tmp_path, f"g{s}", s) for s in (3, 4)]
    logs = [RunLog(Path(r.run_dir), heartbeat_every=0) for r in runs]
    for log in logs:
        log.request_stop()  # as the worker does on SIGTERM, before the first batch ends
    TD3Backend().train_group(runs, logs)
    assert not any(log.finished for log in logs)
    saved = [latest(r) for r in runs]
    assert all(torch.load(p, weights_only=False)["counts"]["phase1_trials"] == 25 for p in saved)
    again = [run_config(config, tmp_path, f"g{s}", s, 2, p) for s, p in zip((3, 4), saved)]
    logs = [RunLog(Path(r.run_dir), attempt=2, heartbeat_every=0) for r in again]
    TD3Backend().train_group(again, logs)
    assert all(log.finished for log in logs)
    assert all(torch.load(latest(r), weights_only=False)["counts"]["trials"] == 50 for r in again)


@pytest.mark.parametrize("model", ["td3-modular", "holistic-ekf"])
def test_updates_take_the_cpu_samples_to_the_nets_device(model):
    """Replay samples and target-smoothing noise are made on the CPU wherever the nets train. On
    the meta device (shapes and devices only, no arithmetic; an op on tensors of two devices fails
    there as on a GPU) the solo and the group update take them to the nets and leave their
    metrics there, for any subset of seeds due and acting."""
    config = config_for(model)
    hyper = Hyper(**config["model"]["hyper"])
    cpu = TD3(hyper, torch.device("cpu"))
    trajectories, _ = collect(make_env(config, 8, 0, "cpu"), cpu.actor, 0.5, torch.Generator().manual_seed(0), "cpu",
                              cpu.actor_reads, hyper.uses_belief)
    replay = make_replay(hyper, torch.Generator().manual_seed(1))
    for trajectory in trajectories:
        replay.add(trajectory)

    def sample():
        batch = replay.sample(4)
        return batch, torch.randn(*batch["reward"].shape, 2) * hyper.target_noise

    meta = torch.device("meta")
    solo = TD3(hyper, meta)
    for _ in range(hyper.policy_delay):
        metrics = solo.learn(sample()[0], torch.Generator().manual_seed(2))
        assert {v.device for v in metrics.values()} == {meta}
    assert "loss/actor" in metrics
    group = GroupTD3([TD3(hyper, meta) for _ in range(3)])
    acted = []
    for due in ([0, 2], [0, 1, 2], [1, 2]):
        drawn = [sample() if i in due else (None, None) for i in range(3)]
        stepped, critic, q1, acting, actor = group.learn([b for b, _ in drawn], [n for _, n in drawn])
        assert stepped == due and {critic.device, q1.device, actor.device} == {meta}
        acted.append(acting)
    assert acted == [[], [0, 2], [1]]  # policy_delay 2: each seed's actor steps at its own second update
