"""The rules of the Harlow and two-step tasks, checked statistically, and their gymnasium ids."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from neurorl_cli.families.metarl.analysis import blind_baseline
from neurorl_cli.families.metarl import envs as metarl_envs
from neurorl_cli.families.metarl.harlow import Harlow
from neurorl_cli.families.metarl.two_step import TwoStep, stay_probabilities
from neurorl_cli.families.metarl.rollout import batched_metrics, run_episodes


def play(env, choose):
    """Run one batch of episodes; `choose(obs, t)` gives actions. Returns the per-step infos and rewards."""
    obs = env.reset()
    infos, rewards = [], []
    for t in range(env.episode_steps):
        obs, reward, done, info = env.step(choose(obs, t))
        infos.append(info)
        rewards.append(reward)
    assert bool(done.all())
    return infos, torch.stack(rewards)


def test_harlow_sides_balanced_and_objects_from_the_right_pool():
    env = Harlow(n=2000, seed=1, pool="test")
    infos, rewards = play(env, lambda obs, t: torch.zeros(env.n, dtype=torch.long))
    choices = [i for i in infos if bool(i["trial_end"].all())]
    assert len(choices) == 6  # one choice per trial
    sides = torch.stack([i["ground_truth"] for i in choices], dim=1)  # (n, 6): rewarded side per trial
    assert torch.all(sides.sum(dim=1) == 3)  # exactly 3 of 6 on the right, in every episode
    # ... in shuffled order: every position is left about half the time, and many orders occur
    assert torch.allclose(sides.mean(dim=0), torch.full((6,), 0.5), atol=0.05)
    assert len({tuple(row.tolist()) for row in sides}) == 20
    rewarded, other = choices[0]["rewarded_object"], choices[0]["other_object"]
    assert torch.all(rewarded != other)
    for ids in (rewarded, other):  # held-out pool: ids [1000, 1200)
        assert ids.min() >= 1000 and ids.max() < 1200
    assert len(set(rewarded.tolist())) > 150  # many objects used
    # Always choosing left earns +5 where the rewarded object is left, -5 elsewhere.
    expected = torch.where(sides == 0, 5.0, -5.0).sum(dim=1)
    assert torch.allclose(rewards.sum(dim=0), expected)


def test_harlow_pools_disjoint_and_observation_shows_the_objects():
    train = Harlow(n=500, seed=2, pool="train")
    infos, _ = play(train, lambda obs, t: torch.ones(train.n, dtype=torch.long))
    ids = torch.cat([infos[1]["rewarded_object"], infos[1]["other_object"]])
    assert ids.max() < 1000  # the training pool never shows a held-out object

    env = Harlow(n=4, seed=3, meta_inputs=False, feature_dim=5)
    obs = env.reset()
    assert torch.all(obs[:, 0] == 1) and torch.all(obs[:, 1:] == 0)  # fixation: the cue only
    obs, reward, _, _ = env.step(torch.zeros(4, dtype=torch.long))
    assert torch.all(reward == 0)  # fixation reward defaults to 0
    left, right = obs[:, 1:6], obs[:, 6:11]
    on_left = env.rewarded_side[:, 0] == 0
    shown_rewarded = torch.where(on_left[:, None], left, right)
    assert torch.allclose(shown_rewarded, env.looks[env.rewarded])
    _, reward, _, info = env.step(env.rewarded_side[:, 0])  # choose the rewarded side
    assert torch.all(reward == 5) and torch.all(info["correct"] == 1)


def test_harlow_pixels_and_meta_inputs():
    env = Harlow(n=3, seed=0, observation="pixels", image_size=8, fixation_reward=1.0)
    assert env.obs_dim == 2 * 64 + 2 + 2  # two 8x8 images, previous action one-hot, reward, time
    obs = env.reset()
    assert obs[:, -4:].abs().sum() == 0  # nothing happened yet
    obs, reward, _, _ = env.step(torch.tensor([1, 0, 1]))
    assert torch.all(reward == 1.0)  # the configured fixation reward
    assert torch.equal(obs[:, -4:-2], torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]))
    assert torch.all(obs[:, -2] == 1.0)  # the previous reward
    assert torch.allclose(obs[:, -1], torch.full((3,), 1 / env.episode_steps))
    images = obs[:, :128].reshape(3, 8, 16)
    assert set(images.unique().tolist()) <= {0.0, 1.0} and images.sum() > 0


def test_blind_baseline_is_exact():
    base = blind_baseline(6)
    assert base[0] == 0.5 and base[-1] == 1.0  # the last side is known from the count
    assert base[1] == pytest.approx(0.6)  # after one outcome, 3 of the 5 left are on the other side
    assert np.mean(base[1:]) == pytest.approx(0.72)
    # A simulated side counter matches it.
    env = Harlow(n=20000, seed=4)
    counts = torch.zeros(env.n, 2)

    def counter(obs, t):
        return torch.where(counts[:, 0] < counts[:, 1], 0, torch.where(counts[:, 1] < counts[:, 0], 1,
                           (torch.rand(env.n) < 0.5).long()))

    obs = env.reset()
    hits = []
    for t in range(env.episode_steps):
        obs, _, _, info = env.step(counter(obs, t))
        if bool(info["trial_end"].all()):
            hits.append(info["correct"].mean().item())
            counts[torch.arange(env.n), info["ground_truth"].long()] += 1
    assert np.allclose(hits, base, atol=0.015)


def test_two_step_transition_reward_and_switch_statistics():
    env = TwoStep(n=4000, seed=5, meta_inputs=False)
    obs = env.reset()
    assert torch.all(obs == torch.tensor([1.0, 0, 0]))
    common, wrong_state, rewarded_good, rewarded_bad, good, switches = [], [], [], [], [], []
    actions = torch.randint(0, 2, (env.n,), generator=torch.Generator().manual_seed(0))
    for t in range(env.episode_steps):
        obs, reward, _, info = env.step(actions)
        if t % 2 == 0:
            state = obs.argmax(dim=1)
            is_common = state == actions + 1
            common.append(is_common.float().mean().item())
        else:
            in_good = info["state"] == info["good_state"]
            rewarded_good.append(reward[in_good].mean().item())
            rewarded_bad.append(reward[~in_good].mean().item())
            good.append(info["good_state"])
    assert np.mean(common) == pytest.approx(0.8, abs=0.01)
    assert np.mean(rewarded_good) == pytest.approx(0.9, abs=0.01)
    assert np.mean(rewarded_bad) == pytest.approx(0.1, abs=0.01)
    goods = torch.stack(good)
    switch_rate = (goods[1:] != goods[:-1]).float().mean().item()
    assert switch_rate == pytest.approx(0.025, abs=0.003)
    assert env.episode_steps == 200


class _Agent:
    """A scripted agent for stay probabilities: model-free win-stay or model-based."""

    def __init__(self, model_based: bool):
        self.model_based = model_based

    def reset(self, n):
        self.n = n
        self.last = torch.zeros(n, dtype=torch.long)
        self.first = None

    def act(self, obs, deterministic=True):
        obs = torch.as_tensor(obs)
        state = obs[:, :3].argmax(dim=1)
        prev_reward = obs[:, 3 + 2]
        if self.first is None:
            self.first = torch.zeros(self.n, dtype=torch.long)
        at_s1 = state == 0
        if at_s1.any() and hasattr(self, "visited"):
            won = prev_reward > 0
            if self.model_based:  # repeat if the visited state paid off: the action that commonly leads there
                target = torch.where(won, self.visited - 1, 2 - self.visited)
            else:  # repeat the rewarded first-stage action
                target = torch.where(won, self.first, 1 - self.first)
            self.first = torch.where(at_s1, target, self.first)
        else:
            self.visited = state
        return self.first.numpy()

    def episode_started(self, mask):
        pass


@pytest.mark.parametrize("model_based", [False, True])
def test_stay_probabilities_tell_model_based_from_model_free(model_based):
    task = {"kind": "two-step", "env": {}}
    rows = run_episodes(_Agent(model_based), task, 200, seed=6)
    m = batched_metrics("two-step", rows, 200)
    if model_based:
        assert m["model_based_index"] > 0.9 and abs(m["reward_effect"]) < 0.1
    else:
        assert m["reward_effect"] > 0.9 and abs(m["model_based_index"]) < 0.1
    assert stay_probabilities(rows) == {k: m[k] for k in stay_probabilities(rows)}


def test_gymnasium_ids_and_checks():
    env = gym.make("neurorl/Harlow-v0", pool="test")
    obs, _ = env.reset(seed=3)
    assert obs.shape == env.observation_space.shape
    trials = 0
    for _ in range(18):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        trials += bool(info.get("new_trial"))
    assert terminated and trials == 6
    env = gym.make("neurorl/TwoStep-v0")
    first, _ = env.reset(seed=1)
    again, _ = env.reset(seed=1)
    assert np.array_equal(first, again)
    with pytest.raises(ValueError, match="unknown setting"):
        metarl_envs.check("harlow", {"objects": 3})
    with pytest.raises(ValueError, match="even"):
        metarl_envs.check("harlow", {"trials": 5})
