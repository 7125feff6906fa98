"""Evaluate checkpoints under named protocols.

`eval --all-checkpoints` fills in only the missing (checkpoint, protocol) cells of the
registry; the evaluation environments come from the protocol's own seed, so every checkpoint
of every run meets the same trials. For agents that act, a rollout steps a batch of seeded environments in lockstep with one batched policy whose
recurrent state is carried from step to step (and started afresh only where an episode
begins), and cuts the stream of steps into trials at NeuroGym's `new_trial`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import Progress
from sqlalchemy import Engine
from sqlmodel import Session, select

from neurorl_cli import catalog
from neurorl_cli.backends.base import env_seed
from neurorl_cli.envs.neurogym_env import make_env
from neurorl_cli.errors import UserError
from neurorl_cli.registry import queries
from neurorl_cli.registry.models import Evaluation, Trial

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


def evaluate_policy(policy, config: dict, protocol: dict) -> tuple[dict, list[dict]]:
    """A protocol's trials: (metrics, one row per trial)."""
    deterministic = protocol.get("actions", "greedy") == "greedy"
    if config["task"]["family"] == "meta-rl":
        return evaluate_batched(policy, config["task"], protocol, deterministic)
    result = rollout(policy, config["task"]["env"], protocol["trials"], seed=protocol["seed"],
                     extra_kwargs=protocol.get("kwargs") or None, deterministic=deterministic)
    return result.metrics(), result.trials


def run_episodes(policy, task: dict, n_episodes: int, seed: int, extra_kwargs: dict | None = None,
                 deterministic: bool = True, on_step=None) -> list[dict]:
    """Whole episodes of one of our batched tasks, all at once: one row per trial, ordered by
    episode then trial. `on_step(t, obs, action, reward, info)` sees every step (for recordings)."""
    import torch

    from neurorl_cli.envs import batched

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
    from neurorl_cli.envs import batched

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
        from neurorl_cli.envs.two_step import stay_probabilities

        out.update(stay_probabilities(rows))
        out["reward_rate"] = float(np.mean([r["conditions"]["rewarded"] for r in rows]))
    return out


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


def verify_checkpoint(run_dir: str, path: str, sha256: str) -> Path:
    """The checkpoint's file, after checking it is there and unchanged; raises ValueError."""
    from neurorl_cli.atomic import sha256 as file_sha256

    full = Path(run_dir) / path
    if not full.is_file():
        raise ValueError(f"checkpoint file {full} is missing")
    if file_sha256(full) != sha256:
        raise ValueError(f"checkpoint file {full} is damaged (its sha256 differs from the one registered)")
    return full


def protocols_of(config: dict, names: list[str], trials: int | None) -> dict[str, tuple[dict, str]]:
    """Selected protocols of a task, with `--trials` applied, and each one's identity hash."""
    known = config["task"]["protocols"]
    for name in names:
        if name not in known:
            raise UserError(f"--protocol {name}: the task has {', '.join(known)}")
    out = {}
    for name in names or list(known):
        protocol = dict(known[name])
        if trials is not None:  # Doom protocols count whole episodes instead of trials
            protocol["episodes" if "episodes" in protocol else "trials"] = trials
        out[name] = (protocol, catalog.protocol_hash(catalog.task_environment(config["task"]), protocol))
    return out


def evaluate_all(engine: Engine, ref: str, names: list[str], trials: int | None, device: str) -> int:
    """Evaluate what is missing; returns how many checkpoints were damaged or missing."""
    from neurorl_cli.backends.base import backend_for
    from neurorl_cli.cli.app import err

    with Session(engine) as session:
        target = queries.target(session, ref)
        config = target.experiment.config
        protocols = protocols_of(config, names, trials)
        todo, empty = [], []
        for run in target.runs:
            stored = queries.checkpoints(session, run.id)
            if not stored:
                empty.append(f"r{run.id} ({run.status})")
            for ck in stored:
                done = set(session.exec(select(Evaluation.protocol_hash).where(Evaluation.checkpoint_id == ck.id)))
                for name, (protocol, digest) in protocols.items():
                    if digest not in done:
                        todo.append((run.id, run.run_dir, ck.id, ck.step, ck.path, ck.sha256, name))
    if len(empty) == len(target.runs):
        raise UserError(f"nothing to evaluate: no checkpoint yet in {', '.join(empty)}; "
                        "see `neurorl runs show` for why, `neurorl train --resume RUN` to go on")
    if empty:
        err.print(f"[yellow]warning:[/] no checkpoint yet: {', '.join(empty)}; evaluating the other runs")
    if not todo:
        err.print(f"every checkpoint of '{ref}' is evaluated under {', '.join(protocols)} already")
        return 0
    backend = backend_for(config)
    files = _verified({cell[2]: cell[1:6] for cell in todo})  # each file checked once, for every protocol
    failures = 0
    with Progress(console=err, transient=False) as progress:
        bar = progress.add_task(f"evaluating {len(todo)} checkpoint x protocol cells", total=len(todo))
        for name, (protocol, digest) in protocols.items():
            cells = [cell for cell in todo if cell[-1] == name]
            for (run_id, _, ck_id, step, *_), result in _evaluated(backend, config, protocol, cells, files, device):
                progress.advance(bar)
                if isinstance(result, Exception):  # a damaged file: report, skip, go on with the others
                    err.print(f"[yellow]warning:[/] run r{run_id} step {step}: {result}; skipped")
                    failures += 1
                    continue
                metrics, trials_done = result
                with Session(engine) as session:
                    ev = Evaluation(
                        checkpoint_id=ck_id, protocol=name, protocol_hash=digest, select=protocol["select"],
                        score=metrics[protocol["select"]], higher_is_better=protocol.get("mode", "max") == "max",
                        trials=int(metrics["trials"] if "trials" in metrics else protocol["trials"]), metrics=metrics,
                    )
                    session.add(ev)
                    session.flush()
                    session.add_all(Trial(evaluation_id=ev.id, **t) for t in trials_done)
                    session.commit()
    return failures


BATCHED_CHECKPOINTS = 50  # checkpoints a backend with `evaluate_many` evaluates in one pass


def _verified(checkpoints: dict[int, tuple]) -> dict[int, Path | Exception]:
    """Each checkpoint's file (by checkpoint id, from (run_dir, ck_id, step, path, sha256)), or
    why it cannot be used: missing, damaged, unreadable."""
    files: dict[int, Path | Exception] = {}
    for ck_id, (run_dir, _, _, path, sha) in checkpoints.items():
        try:
            files[ck_id] = verify_checkpoint(run_dir, path, sha)
        except (ValueError, OSError) as exc:
            files[ck_id] = exc
    return files


def _evaluated(backend, config: dict, protocol: dict, cells: list[tuple], files: dict, device: str):
    """(cell, (metrics, trials) or the exception that stopped it) for each checkpoint cell; a
    backend that can evaluate several checkpoints in one pass gets them in batches, and one at
    a time when a batch fails, so one bad checkpoint does not stop the others."""
    ready = []
    for cell in cells:
        file = files[cell[2]]
        if isinstance(file, Exception):
            yield cell, file
        else:
            ready.append((cell, file))
    one_at_a_time = ready
    if hasattr(backend, "evaluate_many"):
        one_at_a_time = []
        for start in range(0, len(ready), BATCHED_CHECKPOINTS):
            chunk = ready[start:start + BATCHED_CHECKPOINTS]
            try:
                results = backend.evaluate_many(config, [f for _, f in chunk], protocol, device)
            except Exception:
                one_at_a_time += chunk
                continue
            yield from zip((c for c, _ in chunk), results)
    for cell, file in one_at_a_time:
        try:
            yield cell, backend.evaluate(config, file, protocol, device)
        except Exception as exc:
            yield cell, exc
