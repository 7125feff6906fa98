"""Harlow and two-step rollouts: whole episodes of a batched task, all at once, one row per trial."""

from __future__ import annotations

import math

import numpy as np

from neurorl_cli.families.metarl import envs as batched


def run_episodes(policy, task: dict, n_episodes: int, seed: int, extra_kwargs: dict | None = None,
                 deterministic: bool = True, on_step=None) -> list[dict]:
    """Whole episodes of one of our batched tasks, all at once: one row per trial, ordered by
    episode then trial. `on_step(t, obs, action, reward, info)` sees every step (for recordings)."""
    import torch

    env = batched.make(task, n_episodes, seed, extra_kwargs=extra_kwargs)
    obs = env.reset()
    policy.reset(env.n)
    per_episode: list[list[dict]] = [[] for _ in range(env.n)]
    trial_reward = torch.zeros(env.n)
    trial_steps = 0
    for t in range(env.episode_steps):
        action = policy.act(obs.numpy(), deterministic=deterministic)
        next_obs, reward, done, info = env.step(torch.as_tensor(action))
        if on_step is not None:
            on_step(t, obs, action, reward, info)
        obs = next_obs
        trial_reward += reward
        trial_steps += 1
        if info["trial_end"].any():
            fields = {k: v.tolist() for k, v in info.items() if k != "trial_end"}
            for i in range(env.n):
                conditions = {k: fields[k][i] for k in fields if k not in ("correct", "choice", "ground_truth")}
                per_episode[i].append({
                    "env": i, "ground_truth": fields.get("ground_truth", [None] * env.n)[i],
                    "choice": fields["choice"][i], "correct": fields["correct"][i],
                    "reward": float(trial_reward[i]), "reaction_time": None, "steps": trial_steps,
                    "conditions": {"episode": i, **conditions},
                })
            trial_reward.zero_()
            trial_steps = 0
    rows = [row for episode in per_episode for row in episode]
    for index, row in enumerate(rows):
        row["index"] = index
    return rows


def evaluate_batched(policy, task: dict, protocol: dict, deterministic: bool = True) -> tuple[dict, list[dict]]:
    """Enough whole episodes for the protocol's trials, run at once from its seed."""
    per_episode = batched.trials_per_episode(task, protocol.get("kwargs") or None)
    episodes = math.ceil(protocol["trials"] / per_episode)
    rows = run_episodes(policy, task, episodes, protocol["seed"], protocol.get("kwargs") or None, deterministic)
    return batched_metrics(task["kind"], rows, episodes), rows


def batched_metrics(kind: str, rows: list[dict], episodes: int) -> dict[str, float]:
    correct = np.array([r["correct"] for r in rows], dtype=float)
    position = np.array([r["conditions"]["position"] for r in rows])
    out = {
        "fraction_correct": float(correct.mean()),
        "mean_reward": float(np.mean([r["reward"] for r in rows])),
        "episode_reward": float(np.sum([r["reward"] for r in rows]) / episodes),
        "trials": len(rows),
        "episodes": episodes,
    }
    if kind == "harlow":
        for k in np.unique(position):
            out[f"accuracy_trial_{int(k)}"] = float(correct[position == k].mean())
        out["accuracy_later"] = float(correct[position > 1].mean())
    if kind == "two-step":
        from neurorl_cli.families.metarl.two_step import stay_probabilities

        out.update(stay_probabilities(rows))
        out["reward_rate"] = float(np.mean([r["conditions"]["rewarded"] for r in rows]))
    return out
