"""Seed groups of the A2C-LSTM meta-learner: a seed trained in a group (MetaA2CBackend.train_group,
one batched computation) is the seed trained alone, to float rounding.

Same episodes and trials (the action and episode streams end in the same state, the trial
metrics are equal), the same events at the same steps, checkpoints in the solo format that
resume either way, and weights equal to WEIGHT_ATOL. Measured on this machine's CPU (torch
2.13, 1 or 2 threads, identical) after 5 updates at these tiny settings, seeds 0-2: largest
weight difference 3.6e-7 to 1.9e-6, one Harlow seed 6.2e-6 (RMSProp divides by small averages);
RMSProp averages at most 1.5e-7. The group fuses the cell's two products into one and sums in
another order than solo's, so a grouped seed differs from its solo run by rounding only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from neurorl_cli import catalog
from neurorl_cli.engines.native.meta_a2c_group import GroupMetaA2CBackend as MetaA2CBackend
from neurorl_cli.envs.batched import BatchedEnv
from neurorl_cli.families.metarl.harlow import Harlow
from neurorl_cli.families.metarl.two_step import TwoStep
from neurorl_cli.interfaces import NotOffered, RunConfig
from neurorl_cli.runlog import RunLog

WEIGHT_ATOL = 5e-5  # measured: at most 6.2e-6
METRIC_RTOL = 1e-5  # losses and grad norms: float sums in another order
EXACT = ("train/episode_reward", "perf/", "train/trials", "train/episodes")  # counts and sums of integers
EPISODES = 8  # per update
UPDATES = 5
EVERY = 2  # updates between checkpoints: checkpoints at updates 2, 4 and 5


# Tiny tensors: one torch thread is fastest, and keeps the tests quick on a loaded machine.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(task: str) -> dict:
    trials = {"harlow": 6, "two-step": 10}[task]  # per episode
    overrides = ["model.hidden_size=16", f"model.episodes_per_update={EPISODES}", f"model.log_every_episodes={EPISODES}"]
    if task == "two-step":
        overrides.append(f"task.trials={trials}")
    per_update = EPISODES * trials
    (config,) = catalog.resolve(catalog.load_task(task), catalog.load_model("meta-a2c-lstm"), overrides,
                                trials=UPDATES * per_update, checkpoint_every=EVERY * per_update)
    return config


class StopAt(RunLog):
    """A run log whose stop is requested (as the worker's SIGTERM handler does) once a metric
    at `stop_at` or later is logged."""

    stop_at: int | None = None

    def metrics(self, step, values):
        super().metrics(step, values)
        if self.stop_at is not None and step >= self.stop_at:
            self.request_stop()


def make(root: Path, name: str, config: dict, seed: int, attempt: int = 1, resume_from: Path | None = None):
    run = RunConfig(run_id=seed, seed=seed, attempt=attempt, config=config, run_dir=str(root / name), device="cpu",
                    resume_from=str(resume_from) if resume_from else None)
    return run, StopAt(root / name, attempt, heartbeat_every=0)


def solo(root: Path, name: str, config: dict, seed: int, **kw) -> None:
    run, log = make(root, name, config, seed, **kw)
    MetaA2CBackend().train(run, log)
    log.close()


def group(root: Path, members: list[tuple], stop_at: int | None = None) -> list[RunLog]:
    made = [make(root, name, config, seed, **kw) for name, config, seed, kw in members]
    for _, log in made:
        log.stop_at = stop_at
    MetaA2CBackend().train_group([r for r, _ in made], [log for _, log in made])
    for _, log in made:
        log.close()
    return [log for _, log in made]


def checkpoints(run_dir: Path) -> dict[int, dict]:
    return {int(p.stem.split("_")[1]): torch.load(p, weights_only=False)
            for p in sorted((run_dir / "checkpoints").glob("*.zip"))}


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def assert_same_checkpoint(a: dict, b: dict) -> None:
    assert a["counts"] == b["counts"]
    assert torch.equal(a["rng"], b["rng"])  # the same number of actions drawn from the same stream
    assert torch.equal(a["env_rng"], b["env_rng"])  # the same episodes drawn
    assert a.keys() == b.keys() and a["hyper"] == b["hyper"] and a["net"].keys() == b["net"].keys()
    for k in a["net"]:
        torch.testing.assert_close(a["net"][k], b["net"][k], atol=WEIGHT_ATOL, rtol=0)
    assert a["optim"]["param_groups"] == b["optim"]["param_groups"]
    assert a["optim"]["state"].keys() == b["optim"]["state"].keys()
    for i, sa in a["optim"]["state"].items():
        sb = b["optim"]["state"][i]
        assert sa.keys() == sb.keys() and torch.equal(sa["step"], sb["step"])
        torch.testing.assert_close(sa["square_avg"], sb["square_avg"], atol=WEIGHT_ATOL, rtol=0)


def assert_same_log(solo_dir: Path, group_dir: Path) -> None:
    """The group logs what the solo run logged from the same point on: metrics at the same steps
    with the same keys (equal trial counts and outcomes, losses to rounding), checkpoints at the
    same steps."""
    def kept(d, first=0):
        return [e for e in events(d) if e["type"] in ("metric", "checkpoint") and e["step"] >= first]

    g = kept(group_dir)
    s = kept(solo_dir, first=min(e["step"] for e in g))
    assert [(e["type"], e["step"]) for e in s] == [(e["type"], e["step"]) for e in g]
    for a, b in zip(s, g):
        if a["type"] != "metric":
            continue
        assert a["values"].keys() == b["values"].keys()
        for key, value in a["values"].items():
            if key.endswith("_per_s"):
                continue  # rates of time
            if key.startswith(EXACT):
                assert b["values"][key] == value, key
            else:
                assert b["values"][key] == pytest.approx(value, rel=METRIC_RTOL, abs=1e-6), key


def status(run_dir: Path) -> list[str]:
    return [e["status"] for e in events(run_dir) if e["type"] == "status"]


@pytest.mark.parametrize("task", ["harlow", "two-step"])
def test_grouped_seeds_equal_solo_seeds_one_resumed_one_fresh(tmp_path, task):
    """Seeds 0 and 2 fresh for 5 updates and seed 1 resumed from its solo checkpoint at update 2
    (3 more), in one group: each equals its solo run; seed 1 ends first, finishes its own log and
    leaves the group, whose other two seeds go on."""
    config = tiny_config(task)
    seeds = (0, 1, 2)
    for seed in seeds:
        solo(tmp_path, f"solo{seed}", config, seed)
    solo_cps = {seed: checkpoints(tmp_path / f"solo{seed}") for seed in seeds}
    resume_step = sorted(solo_cps[1])[0]  # update 2
    assert solo_cps[1][resume_step]["counts"]["updates"] == EVERY
    resume = tmp_path / "solo1" / "checkpoints" / f"step_{resume_step:012d}.zip"
    logs = group(tmp_path, [("g0", config, 0, {}), ("g1", config, 1, {"attempt": 2, "resume_from": resume}),
                            ("g2", config, 2, {})])

    for seed in seeds:
        got = checkpoints(tmp_path / f"g{seed}")
        expected = {step: cp for step, cp in solo_cps[seed].items() if step > (resume_step if seed == 1 else 0)}
        assert sorted(got) == sorted(expected)
        for step in got:
            assert_same_checkpoint(expected[step], got[step])
        assert got[max(got)]["counts"]["updates"] == UPDATES
        assert_same_log(tmp_path / f"solo{seed}", tmp_path / f"g{seed}")
        assert status(tmp_path / f"g{seed}") == ["running", "completed"] and logs[seed].finished
    # The resumed seed finished its own log while the fresh ones went on training.
    finished_1 = next(e["t"] for e in events(tmp_path / "g1") if e.get("status") == "completed")
    for seed in (0, 2):
        assert finished_1 < max(e["t"] for e in events(tmp_path / f"g{seed}") if e["type"] == "checkpoint")


@pytest.mark.parametrize("task", ["harlow", "two-step"])
def test_stop_saves_every_seed_and_solo_resumes_a_grouped_checkpoint(tmp_path, task):
    """A stop request (the worker's SIGTERM) ends the group with a checkpoint of every seed and
    no finished log; `train --resume` of one seed alone continues it to the solo result."""
    config = tiny_config(task)
    per_update = EPISODES * {"harlow": 6, "two-step": 10}[task]
    logs = group(tmp_path, [("g0", config, 0, {}), ("g1", config, 1, {})], stop_at=3 * per_update)
    for seed, log in enumerate(logs):
        cps = checkpoints(tmp_path / f"g{seed}")
        assert sorted(cps) == [2 * per_update, 3 * per_update]  # the boundary, then the stop
        assert not log.finished and status(tmp_path / f"g{seed}") == ["running"]

    solo(tmp_path, "solo1", config, 1)
    solo(tmp_path, "resumed1", config, 1, attempt=2,
         resume_from=tmp_path / "g1" / "checkpoints" / f"step_{3 * per_update:012d}.zip")
    full, resumed = checkpoints(tmp_path / "solo1"), checkpoints(tmp_path / "resumed1")
    assert sorted(resumed) == [4 * per_update, 5 * per_update]
    for step in resumed:
        assert_same_checkpoint(full[step], resumed[step])


def test_a_seed_at_its_budget_finishes_at_once(tmp_path):
    config = tiny_config("harlow")
    solo(tmp_path, "solo0", config, 0)
    last = max(checkpoints(tmp_path / "solo0"))
    logs = group(tmp_path, [("g0", config, 0, {"attempt": 2, "resume_from": tmp_path / "solo0" / "checkpoints" / f"step_{last:012d}.zip"}),
                            ("g1", config, 1, {})])
    assert all(log.finished for log in logs)
    assert not (tmp_path / "g0" / "checkpoints").exists()
    assert max(checkpoints(tmp_path / "g1")) == last


def test_a_group_needs_one_config(tmp_path):
    a, b = tiny_config("harlow"), tiny_config("two-step")
    with pytest.raises(ValueError, match="one experiment"):
        group(tmp_path, [("g0", a, 0, {}), ("g1", b, 1, {})])


def test_a_task_without_per_seed_streams_is_not_offered(tmp_path):
    """NeuroGym's lockstep envs cannot split their randomness by seed: the engine says so before
    the launcher groups them, and a group asked anyway is refused with nothing logged (the worker
    then trains the seeds one at a time)."""
    (config,) = catalog.resolve(catalog.load_task("perceptual-decision-making"), catalog.load_model("meta-a2c-lstm"),
                                ["model.hidden_size=16", "model.episodes_per_update=4"], steps=400, checkpoint_every=400)
    assert not MetaA2CBackend().can_group(config)
    assert MetaA2CBackend().can_group(tiny_config("harlow"))
    with pytest.raises(NotOffered):
        group(tmp_path, [("g0", config, 0, {}), ("g1", config, 1, {})])
    assert events(tmp_path / "g0") == []


@pytest.mark.parametrize("cls", [Harlow, TwoStep])
def test_split_streams_give_each_block_its_solo_episodes(cls):
    seeds, n = [5, 11, 7926], 4
    together = cls(n=len(seeds) * n, seed=seeds[0])
    together.split_streams(seeds)
    alone = [cls(n=n, seed=s) for s in seeds]
    assert torch.equal(together.reset(), torch.cat([e.reset() for e in alone]))
    for t in range(together.episode_steps):
        action = torch.randint(0, 2, (len(seeds) * n,))
        obs, reward, done, info = together.step(action)
        parts = [e.step(action[i * n:(i + 1) * n]) for i, e in enumerate(alone)]
        assert torch.equal(obs, torch.cat([p[0] for p in parts]))
        assert torch.equal(reward, torch.cat([p[1] for p in parts]))
        for key, value in info.items():
            assert torch.equal(value, torch.cat([p[3][key] for p in parts])), key
    for g, e in zip(together.streams, alone):
        assert torch.equal(g.get_state(), e.generator.get_state())
    together.keep_streams([2])  # seed 7926 alone goes on
    assert together.n == n and torch.equal(together.reset(), alone[2].reset())


def test_grouped_action_draws_are_categorical_samples():
    """Each seed's actions are what Categorical(logits).sample() draws from the global stream
    seeded as that seed's, step after step (probabilities near even, and lopsided)."""
    from neurorl_cli.engines.native.meta_a2c_group import draw_actions

    seeds, n = [0, 3, 9], 16
    generators = []
    for seed in seeds:
        torch.manual_seed(seed)
        generators.append(torch.Generator().set_state(torch.get_rng_state()))
    logits = [torch.randn(20, len(seeds), n, 2) * scale for scale in (0.01, 3.0)]
    grouped = []
    for batch in logits:
        for t in range(batch.shape[0]):
            normalised = batch[t] - batch[t].logsumexp(-1, keepdim=True)
            grouped.append(draw_actions(torch.softmax(normalised, -1), generators))
    for s, seed in enumerate(seeds):
        torch.manual_seed(seed)
        alone = [torch.distributions.Categorical(logits=batch[t, s]).sample() for batch in logits for t in range(batch.shape[0])]
        assert all(torch.equal(a, g[s]) for a, g in zip(alone, grouped))
        assert torch.equal(torch.get_rng_state(), generators[s].get_state())


def test_solo_env_draws_unchanged():
    """BatchedEnv without streams draws from its one generator, as it always did."""
    env = Harlow(n=3, seed=4)
    g = torch.Generator().manual_seed(4)
    assert isinstance(env, BatchedEnv) and env.streams is None
    assert torch.equal(env.rand(3, 2), torch.rand(3, 2, generator=g))
