"""NeuroGym tasks as gymnasium environments, built from a task spec and really seeded.

Two gaps in neurogym 1.0.8 are closed here: `reset(seed=...)` does not reseed the task's
own random state (the trials), and wrappers such as PassReward take no `seed` in `reset`.
`TrialEpisodes` seeds the task itself and ends an episode after `trials_per_episode`
trials, since NeuroGym tasks never end one on their own.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym
import numpy as np

from neurorl_cli.errors import UserError

# A TOML list whose first item names one of these is NeuroGym's (distribution, args) tuple;
# any other list stays a list (NeuroGym reads a list as "choose one at random").
_TIMING_DISTS = {"uniform", "choice", "truncated_exponential", "constant", "until"}


def _neurogym():
    import neurogym  # registers the NeuroGym ids with gymnasium

    return neurogym


def registered_ids() -> list[str]:
    return list(_neurogym().all_envs())


def _timing(value: Any) -> Any:
    if isinstance(value, list) and value and isinstance(value[0], str) and value[0] in _TIMING_DISTS:
        return (value[0], value[1] if len(value) == 2 else value[1:])
    return value


def _kwargs(kwargs: dict) -> dict:
    out = dict(kwargs)
    if isinstance(out.get("timing"), dict):
        out["timing"] = {k: _timing(v) for k, v in out["timing"].items()}
    return out


def env_class(env: dict):
    if env.get("entry_point"):
        module, _, name = env["entry_point"].partition(":")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise UserError(f"env.entry_point {env['entry_point']}: cannot import it ({exc})") from exc
    _neurogym()
    try:
        entry = gym.spec(env["id"]).entry_point
    except gym.error.Error as exc:
        raise UserError(f"env.id {env['id']}: not a registered gymnasium/NeuroGym id") from exc
    if callable(entry):
        return entry
    module, _, name = entry.partition(":")
    return getattr(importlib.import_module(module), name)


def constructor_defaults(env: dict) -> dict[str, Any]:
    from neurorl_cli.specs import describe_signature

    return describe_signature(env_class(env).__init__)


def _wrap(env: gym.Env, wrappers: list[dict]) -> gym.Env:
    ngym = _neurogym()
    for spec in wrappers:
        cls = getattr(ngym.wrappers, spec["name"], None)
        if cls is None:
            known = ", ".join(w.removesuffix("-v0") for w in ngym.wrappers.all_wrappers())
            raise UserError(f"unknown NeuroGym wrapper '{spec['name']}'; known: {known}")
        env = cls(env, **spec.get("kwargs", {}))
    return env


class TrialEpisodes(gym.Wrapper):
    """End an episode after a fixed number of trials; seed the task on reset(seed)."""

    def __init__(self, env: gym.Env, trials_per_episode: int):
        super().__init__(env)
        self.trials_per_episode = trials_per_episode
        self.trials = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            seed_task(self.env, seed)
        self.trials = 0
        # neurogym wrappers take only `options` in reset.
        return self.env.reset(options=options) if options else self.env.reset()

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if info.get("new_trial"):
            self.trials += 1
            if self.trials >= self.trials_per_episode:
                truncated = True
        return obs, reward, terminated, truncated, info


def seed_task(env: gym.Env, seed: int) -> None:
    """Seed every random state a NeuroGym task and its wrappers draw from."""
    base = env.unwrapped
    if hasattr(base, "seed"):
        base.seed(seed)  # TrialEnv.seed: task rng, action space, timing objects
    else:
        base.np_random = np.random.default_rng(seed)
    layer = env
    while isinstance(layer, gym.Wrapper):  # wrappers with schedules of their own
        schedule = vars(layer).get("schedule")
        if hasattr(schedule, "seed"):
            schedule.seed(seed)
        layer = layer.env
    env.action_space.seed(seed)
    env.observation_space.seed(seed)


def make_env(env: dict, seed: int | None = None, extra_kwargs: dict | None = None) -> TrialEpisodes:
    """Build one environment from a task spec's `env` table."""
    cls = env_class(env)
    kwargs = _kwargs({**env.get("kwargs", {}), **(extra_kwargs or {})})
    try:
        base = cls(**kwargs)
    except TypeError as exc:
        raise UserError(f"{env.get('id') or env.get('entry_point')}: bad kwargs ({exc})") from exc
    wrapped = TrialEpisodes(_wrap(base, env.get("wrappers", [])), env.get("trials_per_episode", 100))
    if seed is not None:
        seed_task(wrapped, seed)
    return wrapped


def space_kind(space: gym.Space, role: str) -> str:
    if role == "observation":
        if isinstance(space, gym.spaces.Box):
            return "vector" if len(space.shape) == 1 else "image" if len(space.shape) == 3 else "other"
        return "other"
    for cls, name in (
        (gym.spaces.Discrete, "discrete"),
        (gym.spaces.Box, "box"),
        (gym.spaces.MultiDiscrete, "multidiscrete"),
        (gym.spaces.MultiBinary, "multibinary"),
    ):
        if isinstance(space, cls):
            return name
    return "other"


def spaces(env_spec: dict) -> tuple[str, str, gym.Space, gym.Space]:
    """The spaces of a task's environment, once it has been built, reset and stepped: settings the
    task refuses only then (NeuroGym checks little in its constructors) are refused here, before a
    run is stored, rather than in the worker."""
    name = env_spec.get("id") or env_spec.get("entry_point")
    try:
        env = make_env(env_spec, seed=0)
        try:
            env.reset()
            env.step(env.action_space.sample())
        finally:
            env.close()
    except UserError:
        raise
    except Exception as exc:  # whatever the task's own code raises: it refuses these settings
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise UserError(f"task env {name}: refuses its settings (env.kwargs, env.wrappers): {type(exc).__name__}: {first}") from exc
    obs, act = env.observation_space, env.action_space
    return space_kind(obs, "observation"), space_kind(act, "action"), obs, act


class NeuroGymBatch:
    """`n` NeuroGym environments stepped in lockstep for trainers that unroll whole episodes
    (the batched-env interface of envs/batched.py). Episodes end at different steps: an
    environment whose episode ended is not stepped again and reports zeros until all end.
    The observation is the task's own (its wrappers, e.g. PassReward, add what it passes on).
    """

    fixed_length = False  # episodes end by their trials, at different steps

    def __init__(self, env_spec: dict, n: int, seed: int, device: str = "cpu"):
        import torch

        self.envs = [make_env(env_spec, seed=seed * 1_000 + i) for i in range(n)]
        space = self.envs[0].action_space
        if not isinstance(space, gym.spaces.Discrete):
            raise UserError(f"{env_spec.get('id') or env_spec.get('entry_point')}: needs discrete actions, has {space}")
        self.n, self.n_actions = n, int(space.n)
        self.obs_dim = int(np.prod(self.envs[0].observation_space.shape))
        self.device = torch.device(device)
        self.trials_per_episode = int(env_spec.get("trials_per_episode", 100))
        self.episode_steps = 1_000_000  # a bound for the unroll loop; episodes end by their trials

    def reset(self):
        self.alive = np.ones(self.n, dtype=bool)
        import torch

        return torch.as_tensor(np.stack([env.reset()[0] for env in self.envs]).reshape(self.n, -1),
                               dtype=torch.float32, device=self.device)

    def step(self, action):
        import torch

        actions = np.asarray(torch.as_tensor(action).cpu())
        obs = np.zeros((self.n, self.obs_dim), dtype=np.float32)
        reward = np.zeros(self.n, dtype=np.float32)
        trial_end = np.zeros(self.n, dtype=bool)
        correct = np.full(self.n, np.nan, dtype=np.float32)
        for i in np.flatnonzero(self.alive):
            ob, r, terminated, truncated, info = self.envs[i].step(actions[i])
            obs[i], reward[i] = np.asarray(ob).reshape(-1), r
            if info.get("new_trial"):
                trial_end[i] = True
                correct[i] = float(info.get("performance", np.nan))
            if terminated or truncated:
                self.alive[i] = False
        info = {"trial_end": torch.as_tensor(trial_end, device=self.device), "correct": torch.as_tensor(correct, device=self.device)}
        done = torch.as_tensor(~self.alive, device=self.device)
        return torch.as_tensor(obs, device=self.device), torch.as_tensor(reward, device=self.device), done, info
