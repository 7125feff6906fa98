"""The toy family as neurorl sees it: found through the `neurorl.families` entry point `toy`,
which names `family` below. It reaches neurorl only through neurorl_cli.interfaces and
neurorl_cli.specs (and errors.UserError for a bad watch option)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from neurorl_cli.interfaces import FamilyBase, Offer, Policy, Recording, WatchRequest, env_seed

from .env import CUES, CueMatchEnv
from .spec import CueMatchSettings, ToyTask, settings

ROLLOUT_ENVS = 8  # environments a rollout plays side by side
WATCH_TRIALS = 4
FRAME_MS = 300


class ToyFamily(FamilyBase):
    name = "toy"
    task_spec = ToyTask
    catalog = Path(__file__).resolve().parent / "tasks"
    set_paths = ("env.",)  # `--set task.delay=2` sets env.delay
    libraries = {"neurorl-toy": "neurorl-toy", "gymnasium": "Gymnasium"}
    training_key = "train/episode_reward"  # sb3's rollout/ep_rew_mean, as neurorl stores it
    more_training_keys = ("perf/trial_performance",)  # from info["performance"] at each trial's end

    def setting_defaults(self, task: dict, prefix: str) -> dict[str, Any]:
        if prefix == "env.":
            return {key: field.default for key, field in CueMatchSettings.model_fields.items()}
        return {}

    def source(self, task) -> str:
        env = settings(task.model_dump() if hasattr(task, "model_dump") else task)
        return f"cue-match (toy plug-in; {env['fixation'] + 1 + env['delay']} steps per trial)"

    def make(self, task: dict, seed: int | None, extra: dict | None = None) -> CueMatchEnv:
        return CueMatchEnv(**settings(task, extra), seed=seed)

    def offer(self, task: dict) -> Offer:
        env = self.make(task, seed=0)
        return Offer(observations="vector", actions="discrete", observation_space=str(env.observation_space),
                     action_space=str(env.action_space), single_env=True, batched=False)

    def single_env(self, task: dict, seed: int, **options) -> CueMatchEnv:
        return self.make(task, seed, options.get("extra_kwargs"))

    def rollout(self, policy: Policy, task: dict, protocol: dict) -> tuple[dict, list[dict]]:
        """The protocol's trials, dealt out over a few environments seeded from its seed and played
        in lockstep; recurrent state carries across trials and restarts with each episode."""
        n_trials = int(protocol["trials"])
        deterministic = protocol.get("actions", "greedy") == "greedy"
        seed = int(protocol.get("seed", 0))
        n = min(ROLLOUT_ENVS, n_trials)
        quota = [n_trials // n + (i < n_trials % n) for i in range(n)]
        envs = [self.make(task, env_seed(seed, i), protocol.get("kwargs") or None) for i in range(n)]
        obs = np.stack([env.reset()[0] for env in envs])
        policy.reset(n)
        per_env: list[list[dict]] = [[] for _ in range(n)]
        trial_reward = np.zeros(n)
        trial_steps = np.zeros(n, dtype=int)
        episode = np.zeros(n, dtype=int)
        while any(len(rows) < q for rows, q in zip(per_env, quota)):
            actions = np.asarray(policy.act(obs, deterministic=deterministic)).reshape(n, -1)[:, 0]
            started = np.zeros(n, dtype=bool)
            for i, env in enumerate(envs):
                ob, reward, terminated, truncated, info = env.step(int(actions[i]))
                trial_reward[i] += reward
                trial_steps[i] += 1
                if info.get("new_trial") and len(per_env[i]) < quota[i]:
                    per_env[i].append({
                        "env": i, "ground_truth": int(info["ground_truth"]), "choice": int(info["choice"]),
                        "correct": bool(info["performance"]), "reward": float(trial_reward[i]),
                        "reaction_time": None, "steps": int(trial_steps[i]),
                        "conditions": {"cue": info["cue"], "episode": int(episode[i]), "trial": int(info["trial"])},
                    })
                if info.get("new_trial"):
                    trial_reward[i], trial_steps[i] = 0.0, 0
                if terminated or truncated:
                    ob, _ = env.reset()
                    episode[i] += 1
                    started[i] = True
                obs[i] = ob
            if started.any():
                policy.episode_started(started)
        rows = [row for rows in per_env for row in rows]
        for index, row in enumerate(rows):
            row["index"] = index
        metrics = {
            "fraction_correct": float(np.mean([r["correct"] for r in rows])),
            "mean_reward": float(np.mean([r["reward"] for r in rows])),
            "fraction_wait": float(np.mean([r["choice"] == 0 for r in rows])),
            "trials": len(rows),
        }
        return metrics, rows

    def methods(self, task: dict) -> str:
        env = settings(task)
        delay = f"after a delay of {env['delay']} steps" if env["delay"] else "while the cue showed"
        return (f"In the toy cue-match task (neurorl-toy plug-in), each trial showed one of two cues after "
                f"{env['fixation']} fixation step(s), and the agent pressed the button that matched the cue {delay} "
                f"(reward 1 if correct, else 0; cue noise sigma {env['sigma']:g}; "
                f"{env['trials_per_episode']} trials per episode).")

    def watch(self, request: WatchRequest) -> Recording:
        from neurorl_cli.errors import UserError

        if request.options:
            raise UserError(f"the cue-match task takes no watch options ({', '.join(sorted(request.options))})")
        if request.policy is None:
            raise UserError("the cue-match watch plays a checkpoint: none was given")
        protocol = request.config["task"].get("protocols", {}).get(request.protocol, {})
        seed = int(protocol.get("seed", 0)) if request.seed is None else int(request.seed)
        n_trials = request.trials or WATCH_TRIALS
        deterministic = protocol.get("actions", "greedy") == "greedy"
        env = self.make(request.config["task"], env_seed(seed, 0), protocol.get("kwargs") or None)
        policy = request.policy()
        policy.reset(1)
        obs, _ = env.reset()
        frames, done, total = [], 0, 0.0
        run, checkpoint = request.run, request.checkpoint
        title = f"run r{getattr(run, 'id', '?')}, step {getattr(checkpoint, 'step', '?')}"
        while done < n_trials:
            cue = CUES[env.cue]
            action = int(np.asarray(policy.act(obs[None], deterministic=deterministic)).reshape(-1)[0])
            period = env.period()
            obs_next, reward, terminated, truncated, info = env.step(action)
            total += reward
            outcome = None if not info.get("new_trial") else bool(info["performance"])
            frames.append(draw_frame(obs, period, cue, action, outcome, f"{title}  trial {done + 1}/{n_trials}  "
                                                                         f"reward {total:g}"))
            if info.get("new_trial"):
                done += 1
            if terminated or truncated:
                obs_next, _ = env.reset()
                policy.episode_started(np.ones(1, dtype=bool))
            obs = obs_next
        words = ["--protocol", request.protocol, "--seed", str(seed), "--trials", str(n_trials)]
        name = f"watch-run{getattr(run, 'id', 0)}-step{getattr(checkpoint, 'step', 0)}.gif"
        return Recording(frames=frames, frame_ms=FRAME_MS, default_name=name, words=words)


def draw_frame(obs: np.ndarray, period: str, cue: str, action: int, outcome: bool | None, title: str) -> np.ndarray:
    """One step: the inputs (fixation point, the two cue patches with their noise, the go signal),
    the buttons with the one pressed filled, and a border green or red when the trial is scored."""
    from PIL import Image, ImageDraw

    width, height = 320, 200
    image = Image.new("RGB", (width, height), (24, 24, 28))
    draw = ImageDraw.Draw(image)
    draw.text((8, 6), title, fill=(220, 220, 220))
    draw.text((8, 20), f"{period}" + (f" (cue {cue})" if period != "fixation" else ""), fill=(160, 160, 170))
    if obs[0] > 0.5:  # fixation point
        draw.ellipse((155, 75, 165, 85), fill=(240, 240, 240))
    colours = ((255, 150, 40), (60, 150, 255))
    for k, x in enumerate((90, 200)):  # cue patches, brightness = the input
        level = float(np.clip(obs[1 + k], 0, 1))
        fill = tuple(int(c * level) for c in colours[k])
        draw.rectangle((x, 60, x + 30, 100), fill=fill, outline=(90, 90, 90))
        draw.text((x + 11, 104), CUES[k], fill=(200, 200, 200))
    if obs[3] > 0.5:
        draw.text((148, 120), "GO", fill=(120, 255, 120))
    for k, x in enumerate((70, 190)):  # buttons A, B
        pressed = action == 1 + k
        draw.rectangle((x, 145, x + 60, 175), fill=colours[k] if pressed else (50, 50, 56), outline=colours[k])
        draw.text((x + 6, 155), f"press {CUES[k]}", fill=(0, 0, 0) if pressed else (200, 200, 200))
    if outcome is not None:
        edge = (60, 220, 90) if outcome else (230, 60, 60)
        draw.rectangle((0, 0, width - 1, height - 1), outline=edge, width=5)
        draw.text((262, 20), "correct" if outcome else "wrong", fill=edge)
    return np.asarray(image, dtype=np.uint8)


family = ToyFamily()
