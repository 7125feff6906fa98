"""NeuroGym rollouts: a batched policy over seeded environments in lockstep, its recurrent state
carried from step to step (and started afresh only where an episode begins), the stream of
steps cut into trials at NeuroGym's `new_trial`."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from neurorl_cli.families.neurogym.envs import make_env
from neurorl_cli.interfaces import env_seed

EVAL_ENVS = 16  # environments stepped together during evaluation


@dataclass
class Rollout:
    trials: list[dict]

    def metrics(self) -> dict[str, float]:
        correct = [t["correct"] for t in self.trials if t["correct"] is not None]
        rts = [t["reaction_time"] for t in self.trials if t["reaction_time"] is not None]
        return {
            "fraction_correct": float(np.mean(correct)) if correct else float("nan"),
            "mean_reward": float(np.mean([t["reward"] for t in self.trials])),
            "trials": len(self.trials),
            "mean_reaction_time": float(np.mean(rts)) if rts else float("nan"),
            "response_rate": float(np.mean([t["reaction_time"] is not None for t in self.trials])),
        }


def _scalar_conditions(trial: dict | None) -> dict:
    out = {}
    for key, value in (trial or {}).items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool | int | float | str):
            out[key] = value
    return out


def _number(value):
    if value is None:
        return None
    value = np.asarray(value)
    return float(value) if value.size == 1 else None


class _TrialTracker:
    """Cuts one environment's steps into trials and measures each."""

    def __init__(self, env):
        self.env = env
        self.done: list[dict] = []
        self._start()

    def _start(self):
        base = self.env.unwrapped
        self.trial = copy.deepcopy(getattr(base, "trial", None))
        gt = getattr(base, "gt", None)
        # The ground truth as an action: the target at the trial's last step (its decision).
        self.target = _number(np.asarray(gt)[-1]) if gt is not None and np.size(gt) else None
        self.stim_onset = getattr(base, "start_t", {}).get("stimulus")
        self.reward = 0.0
        self.steps = 0
        self.t = None

    def before_step(self) -> None:
        self.t = getattr(self.env.unwrapped, "t", None)

    def after_step(self, action, reward, info) -> None:
        self.reward += float(reward)
        self.steps += 1
        if info.get("new_trial"):
            choice = _number(action)
            responded = choice is not None and choice != 0
            rt = None
            if responded and self.stim_onset is not None and self.t is not None:
                rt = float(self.t - self.stim_onset)  # the choice's time from stimulus onset
            self.done.append(
                {
                    "ground_truth": self.target,
                    "choice": choice,
                    "correct": _number(info.get("performance")),
                    "reward": self.reward,
                    "reaction_time": rt,
                    "steps": self.steps,
                    "conditions": _scalar_conditions(self.trial),
                }
            )
            self._start()


def rollout(
    policy,
    env_spec: dict,
    n_trials: int,
    seed: int,
    n_envs: int = EVAL_ENVS,
    extra_kwargs: dict | None = None,
    deterministic: bool = True,
    carry_state: bool = True,
) -> Rollout:
    """Run `n_trials` trials (spread over `n_envs` environments) with the policy.

    `carry_state=False` starts the recurrent state afresh at every step: only for the test
    that proves the state matters.
    """
    n_envs = max(1, min(n_envs, n_trials))
    per_env = math.ceil(n_trials / n_envs)
    envs = [make_env(env_spec, seed=env_seed(seed, i), extra_kwargs=extra_kwargs) for i in range(n_envs)]
    obs = np.stack([env.reset()[0] for env in envs])
    trackers = [_TrialTracker(env) for env in envs]
    policy.reset(n_envs)
    while min(len(t.done) for t in trackers) < per_env:
        if not carry_state:
            policy.reset(n_envs)
        actions = policy.act(obs, deterministic=deterministic)
        started = np.zeros(n_envs, dtype=bool)
        for i, (env, tracker) in enumerate(zip(envs, trackers)):
            tracker.before_step()
            ob, reward, terminated, truncated, info = env.step(actions[i])
            tracker.after_step(actions[i], reward, info)
            if terminated or truncated:
                ob, _ = env.reset()
                started[i] = True
            obs[i] = ob
        if started.any():
            policy.episode_started(started)
    for env in envs:
        env.close()
    # Interleave envs trial by trial, so any prefix of the list mixes all of them.
    trials = []
    for k in range(per_env):
        for i, tracker in enumerate(trackers):
            trials.append({**tracker.done[k], "env": i})
    trials = trials[:n_trials]
    for index, trial in enumerate(trials):
        trial["index"] = index
    return Rollout(trials=trials)


def evaluate(policy, task: dict, protocol: dict) -> tuple[dict, list[dict]]:
    """A protocol's trials: (metrics, one row per trial)."""
    result = rollout(policy, task["env"], protocol["trials"], seed=protocol["seed"],
                     extra_kwargs=protocol.get("kwargs") or None,
                     deterministic=protocol.get("actions", "greedy") == "greedy")
    return result.metrics(), result.trials


def record_steps(policy, env_spec: dict, n_steps: int, seed: int) -> list[dict]:
    """Step-by-step record of one environment (observations, actions, ground truth, rewards,
    performance and recurrent activity), for trial panels and GIFs."""
    env = make_env(env_spec, seed=seed)
    obs, _ = env.reset()
    policy.reset(1)
    records = []
    for _ in range(n_steps):
        action = policy.act(obs[None], deterministic=True)[0]
        record = {"obs": np.asarray(obs).copy(), "action": _number(action)}
        record.update({f"activity/{k}": v[0] for k, v in policy.activity().items()})
        obs, reward, terminated, truncated, info = env.step(action)
        record.update(
            reward=float(reward), gt=_number(info.get("gt")), new_trial=bool(info.get("new_trial")),
            performance=_number(info.get("performance")),
        )
        records.append(record)
        if terminated or truncated:
            obs, _ = env.reset()
            policy.episode_started(np.ones(1, dtype=bool))
    env.close()
    return records
