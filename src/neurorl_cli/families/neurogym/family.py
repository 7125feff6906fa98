"""The NeuroGym family: any registered NeuroGym task (or a user's `module:Class`), with its
wrappers, trained through gymnasium; `neurogym:<Id>` makes a task from any registered id."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from neurorl_cli.analysis.training import TRAINING_KEY
from neurorl_cli.families.neurogym.spec import EnvSpec, NeuroGymTask
from neurorl_cli.interfaces import FamilyBase, Offer, Recording, WatchRequest
from neurorl_cli.specs import Budget, config_hash, unknown

PREFIX = "neurogym:"
WATCH_TRIALS = 5


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "neurorl"


def _spaces(env: dict) -> tuple[str, str, str, str]:
    """(observation kind, action kind, and their descriptions) of a task's environment.

    Finding them means building the environment, and importing NeuroGym imports torch (2-3 s).
    For registered ids the answer depends only on the spec and the library versions, so it is
    cached per user; a user's own `module:Class` is always built afresh, since its code may change.
    """
    from importlib.metadata import version

    from neurorl_cli import atomic
    from neurorl_cli.families.neurogym import envs

    key = config_hash({"env": env, "neurogym": version("neurogym"), "gymnasium": version("gymnasium")})
    cache = _cache_dir() / "spaces.json"
    known: dict = {}
    if env.get("id"):
        try:
            known = json.loads(cache.read_text())
        except (OSError, ValueError):
            known = {}
        if key in known:
            return tuple(known[key])
    obs_kind, act_kind, obs_space, act_space = envs.spaces(env)
    found = (obs_kind, act_kind, str(obs_space), str(act_space))
    if env.get("id"):
        try:
            atomic.write_json(cache, {**known, key: list(found)})
        except OSError:
            pass  # a cache we cannot write only costs time
    return found


class NeuroGymFamily(FamilyBase):
    name = "neurogym"
    task_spec = NeuroGymTask
    set_paths = ("env.kwargs.", "env.")
    libraries = {"neurogym": "NeuroGym"}
    training_key = TRAINING_KEY
    x_label = "agent steps"

    def named_task(self, name: str):
        if not name.startswith(PREFIX):
            return None
        from neurorl_cli.families.neurogym import envs

        env_id = name.removeprefix(PREFIX)
        known = envs.registered_ids()
        if env_id not in known:
            raise unknown("NeuroGym task", env_id, known, "List them with `neurorl tasks --all`.")
        return NeuroGymTask(
            name=name,
            description=f"NeuroGym {env_id} with its default settings.",
            env=EnvSpec(id=env_id),
            budget=Budget(steps=100_000, checkpoint_every=10_000),
        )

    def generated_names(self) -> list[str]:
        from neurorl_cli.families.neurogym import envs

        return [PREFIX + i for i in envs.registered_ids()]

    def setting_defaults(self, task: dict, prefix: str) -> dict[str, Any]:
        if prefix != "env.kwargs.":
            return {}
        from neurorl_cli.families.neurogym import envs

        return envs.constructor_defaults(task["env"])

    def source(self, task) -> str:
        return task.env.id or task.env.entry_point

    def offer(self, task: dict) -> Offer:
        obs_kind, act_kind, obs_space, act_space = _spaces(task["env"])
        return Offer(observations=obs_kind, actions=act_kind, observation_space=obs_space, action_space=act_space,
                     single_env=True, batched=True)

    def single_env(self, task: dict, seed: int, **options):
        from neurorl_cli.families.neurogym.envs import make_env

        return make_env(task["env"], seed=seed)

    def batched_env(self, task: dict, n: int, seed: int, device: str = "cpu", extra_kwargs: dict | None = None):
        from neurorl_cli.families.neurogym.envs import NeuroGymBatch

        spec = dict(task["env"])
        spec["kwargs"] = {**spec.get("kwargs", {}), **(extra_kwargs or {})}
        return NeuroGymBatch(spec, n, seed, device)

    def rollout(self, policy, task: dict, protocol: dict):
        from neurorl_cli.families.neurogym.rollout import evaluate

        return evaluate(policy, task, protocol)

    def protocol_sections(self, ctx, protocol: str) -> list:
        from neurorl_cli.families.neurogym.report import protocol_sections

        return protocol_sections(ctx, protocol)

    def methods(self, task: dict) -> str:
        from neurorl_cli.analysis.prose import and_list, pairs, with_settings

        env = task.get("env", {})
        wrappers = [w["name"] + (f" ({pairs(w['kwargs'])})" if w.get("kwargs") else "") for w in env.get("wrappers", [])]
        return (f"Agents were trained on the NeuroGym task {task['name']} "
                f"(environment {env.get('id') or env.get('entry_point')} with {with_settings(env.get('kwargs', {}))}; "
                + (f"wrappers {and_list(wrappers)}" if wrappers else "no wrappers")
                + (f"; episodes of {env['trials_per_episode']} trials" if env.get("trials_per_episode") else "")
                + ").")

    def watch(self, request: WatchRequest) -> Recording:
        from neurorl_cli.families.neurogym import panels
        from neurorl_cli.families.neurogym.report import protocol_env
        from neurorl_cli.families.neurogym.watch import frame_duration_ms, render_frames

        trials = request.trials or WATCH_TRIALS
        env_spec, _ = protocol_env(request.config["task"], request.protocol)
        env_seed = request.env_seed
        records = panels.record_trials(request.policy(), env_spec, trials, env_seed)
        run, step = request.run, request.checkpoint.step
        title = f"run r{run.id} (seed {run.seed}), checkpoint step {step}, env seed {env_seed}"
        frames = render_frames(records, panels.observation_names(env_spec), title)
        return Recording(frames, frame_duration_ms(env_spec), f"watch-run{run.id}-step{step}.gif",
                         ["--trials", str(trials)] + (["--seed", str(request.seed)] if request.seed is not None else []))


family = NeuroGymFamily()
