"""Stable-Baselines3 / sb3-contrib trainer: RecurrentPPO, PPO and A2C on any task whose family offers a gymnasium environment.

Thin on purpose: the library trains; this module builds its environments from the task
spec, forwards its logger's values and NeuroGym's per-trial performance to the run log,
and saves checkpoints at multiples of the budget's `checkpoint_every` agent steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from neurorl_cli.errors import UserError
from neurorl_cli.runlog import RunLog
from neurorl_cli.engines.base import package_versions, resolve_device
from neurorl_cli.interfaces import RunConfig, env_seed

ALGOS = {
    "RecurrentPPO": ("sb3_contrib", "RecurrentPPO"),
    "PPO": ("stable_baselines3", "PPO"),
    "A2C": ("stable_baselines3", "A2C"),
}
VERSIONED = ["neurorl-cli", "torch", "stable-baselines3", "sb3-contrib", "neurogym", "vizdoom", "gymnasium", "numpy"]


def algo_class(name: str):
    import importlib

    module, cls = ALGOS[name]
    return getattr(importlib.import_module(module), cls)


def constructor_defaults(algo: str) -> dict[str, Any]:
    from neurorl_cli.specs import describe_signature

    skip = {"policy", "env", "policy_kwargs", "seed", "device", "verbose", "tensorboard_log", "_init_setup_model"}
    return {k: v for k, v in describe_signature(algo_class(algo).__init__).items() if k not in skip}


class RetinalFeatures(BaseFeaturesExtractor):
    """A retinal encoder (nets/retinal.py) as the policy's features extractor, on Doom images.

    sb3 hands it observations already transposed to (N, C, H, W) and scaled to [0, 1]. It lives
    at module level so that a saved model names it and `load` finds it again.
    """

    def __init__(self, observation_space, name: str = "retinal-simple", **settings: Any):
        from neurorl_cli.nets.retinal import make_encoder

        encoder = make_encoder(name, tuple(observation_space.shape), **settings)
        super().__init__(observation_space, features_dim=encoder.output_size)
        self.encoder = encoder

    def forward(self, observations):
        return self.encoder(observations)


def policy_kwargs(model_spec: dict) -> dict:
    """The spec's policy_kwargs, with its retinal encoder (if any) as the features extractor."""
    kwargs = dict(model_spec["policy_kwargs"])
    if model_spec.get("encoder"):
        settings = dict(model_spec["encoder"])
        kwargs["features_extractor_class"] = RetinalFeatures
        kwargs["features_extractor_kwargs"] = {"name": settings.pop("name"), **settings}
    return kwargs


def make_single_env(task: dict, seed: int):
    """One gymnasium environment of a task, from its family."""
    from neurorl_cli.plugins import family_of

    return family_of(task).single_env(task, seed)


def load_model(config: dict, checkpoint, device: str, env=None):
    """An sb3 checkpoint loaded without unpickling. sb3 stores some entries of its zip (the policy
    class, spaces, schedules, the last observation) with cloudpickle, which can run code; each is
    given to `load` instead (sb3's `custom_objects`), from the config and the task's environment,
    and the weights are read by torch weights-only. What a resumed attempt gets as None (the last
    observation, episode buffers, the buffer class) sb3 rebuilds; the schedules it rebuilds from
    the stored rates."""
    import json
    import zipfile

    from stable_baselines3.common.utils import FloatSchedule

    model_spec = config["model"]
    cls = algo_class(model_spec["algo"])
    try:
        with zipfile.ZipFile(checkpoint) as archive:
            data = json.loads(archive.read("data"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"checkpoint {checkpoint} cannot be read, it is damaged or not an sb3 checkpoint ({exc})") from exc
    pickled = [k for k, v in data.items() if isinstance(v, dict) and ":serialized:" in v]
    settings = {**constructor_defaults(model_spec["algo"]), **model_spec["hyper"]}
    own_env = env is None and any(k in pickled for k in ("observation_space", "action_space"))
    if own_env:
        env = make_vec_env(config["task"], 0, 1)
    # The spaces as the model saw them: sb3 wraps image envs to channel-first before training.
    seen = cls._wrap_env(env, verbose=0) if env is not None else None
    given = {"policy_class": cls.policy_aliases[model_spec["policy"]], "policy_kwargs": policy_kwargs(model_spec),
             "observation_space": seen.observation_space if seen is not None else None,
             "action_space": seen.action_space if seen is not None else None,
             **{k: FloatSchedule(settings[k]) for k in ("clip_range", "clip_range_vf") if settings.get(k) is not None},
             "lr_schedule": FloatSchedule(settings["learning_rate"])}
    try:
        return cls.load(str(checkpoint), env=None if own_env else env, device=device,
                        custom_objects={k: given.get(k) for k in pickled})
    finally:
        if own_env:
            env.close()


def make_vec_env(task: dict, seed: int, n_envs: int):
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    def factory(index: int):
        return lambda: Monitor(make_single_env(task, seed=env_seed(seed, index)))

    # Each env is seeded when built; the vec env is not reseeded (sb3 would give env i the
    # seed `seed + i`, so neighbouring seeds would share trial streams).
    return DummyVecEnv([factory(i) for i in range(n_envs)])


# sb3 logger keys -> namespaced registry keys (DESIGN.md: train/, loss/, perf/).
def _registry_key(key: str) -> str | None:
    if key == "time/fps":
        return "train/steps_per_s"
    if key == "rollout/ep_rew_mean":
        return "train/episode_reward"
    if key.startswith("train/"):
        return "loss/" + key.removeprefix("train/")
    if key.startswith("perf/"):
        return key
    if key.startswith("episode/"):  # Doom's episode stats, under sample-factory's names for them
        return "train/" + key.removeprefix("episode/")
    return None


def _writer(log: RunLog):
    from stable_baselines3.common.logger import KVWriter

    class RunLogWriter(KVWriter):
        """An sb3 logger output that forwards every dump to the run log."""

        def write(self, key_values: dict, key_excluded: dict, step: int = 0) -> None:
            values = {}
            for key, value in key_values.items():
                name = _registry_key(key)
                if name is not None and isinstance(value, int | float | np.number):
                    values[name] = float(value)
            log.metrics(step, values)

        def close(self) -> None:
            pass

    return RunLogWriter()


def _callback(log: RunLog, every: int, save):
    from stable_baselines3.common.callbacks import BaseCallback

    class TrialsAndCheckpoints(BaseCallback):
        """Per-trial performance from NeuroGym's info, and checkpoints every `every` steps."""

        def _on_training_start(self) -> None:
            self.episode_stats: dict[str, list[float]] = {}  # Doom: the unshaped reward and pickups
            self.perf: list[float] = []
            self.trial_reward = np.zeros(self.training_env.num_envs)
            self.trial_rewards: list[float] = []
            self.last_saved = self.num_timesteps

        def _on_step(self) -> bool:
            self.trial_reward += self.locals["rewards"]
            for i, info in enumerate(self.locals["infos"]):
                if "true_objective" in info:
                    for key, value in info.get("episode_extra_stats", {}).items():
                        self.episode_stats.setdefault(key, []).append(float(value))
                if info.get("new_trial"):
                    if "performance" in info:
                        self.perf.append(float(info["performance"]))
                    self.trial_rewards.append(float(self.trial_reward[i]))
                    self.trial_reward[i] = 0.0
            log.step = self.num_timesteps
            if self.num_timesteps // every > self.last_saved // every:
                self.last_saved = self.num_timesteps
                save(self.model, self.num_timesteps)
            return not log.stop_requested  # a stop request ends learn(); train() saves the final checkpoint

        def _on_rollout_end(self) -> None:
            if self.perf:
                self.logger.record("perf/trial_performance", float(np.mean(self.perf)))
                self.logger.record("perf/trials", len(self.perf))
            if self.trial_rewards:
                self.logger.record("perf/trial_reward", float(np.mean(self.trial_rewards)))
            for key, values in self.episode_stats.items():
                self.logger.record(f"episode/{key}", float(np.mean(values)))
            self.perf, self.trial_rewards, self.episode_stats = [], [], {}

    return TrialsAndCheckpoints()


class SB3Backend:
    name = "sb3"

    def budget_grain(self, config: dict) -> int | None:
        """Steps per rollout: sb3's learn() stops only after a whole rollout of `n_steps` per env."""
        from neurorl_cli.specs import budget_total
        from neurorl_cli.specs import describe_signature

        model = config["model"]
        if budget_total(config)[0] != "steps":
            return None
        n_steps = model["hyper"].get("n_steps", describe_signature(algo_class(model["algo"]).__init__).get("n_steps"))
        return int(n_steps) * int(model["n_envs"]) if n_steps else None

    def check_settings(self, config: dict) -> None:
        """Build the library's model on the task's environments, without training, so that settings
        the library refuses (also the ones no schema knows, and combinations such as batch_size 1)
        are refused before anything is stored."""
        model_spec = config["model"]
        venv = make_vec_env(config["task"], 0, model_spec["n_envs"])
        try:
            algo_class(model_spec["algo"])(
                model_spec["policy"], venv, device="cpu", verbose=0,
                policy_kwargs=policy_kwargs(model_spec), **model_spec["hyper"],
            )
        except Exception as exc:  # whatever the library raises: it refuses these settings
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise UserError(f"{model_spec['algo']} refuses the model's settings (model.hyper, model.policy_kwargs): "
                            f"{type(exc).__name__}: {first}") from exc
        finally:
            venv.close()

    def train(self, run: RunConfig, log: RunLog) -> None:
        from stable_baselines3.common.logger import Logger
        from stable_baselines3.common.utils import set_random_seed

        device = resolve_device(run.device)
        model_spec, task = run.config["model"], run.config["task"]
        cls = algo_class(model_spec["algo"])
        seed = run.seed
        if run.resume_from:
            seed = run.seed + 7919 * (run.attempt - 1)  # a resumed attempt draws fresh trials
        set_random_seed(seed, using_cuda=device.startswith("cuda"))
        venv = make_vec_env(task, seed, model_spec["n_envs"])
        if run.resume_from:
            model = load_model(run.config, run.resume_from, device, env=venv)
        else:
            model = cls(
                model_spec["policy"], venv, device=device, verbose=0,
                policy_kwargs=policy_kwargs(model_spec), **model_spec["hyper"],
            )
        model.set_logger(Logger(folder=None, output_formats=[_writer(log)]))
        log.started(device=device, versions=package_versions(VERSIONED))

        def save(m, step: int) -> None:
            log.checkpoint(step, lambda tmp: m.save(tmp))

        done = model.num_timesteps
        remaining = run.steps - done
        if remaining > 0:
            model.learn(
                total_timesteps=remaining,
                callback=_callback(log, run.checkpoint_every, save),
                reset_num_timesteps=not run.resume_from,
            )
        if model.num_timesteps % run.checkpoint_every and model.num_timesteps > done:
            save(model, model.num_timesteps)  # the final policy is always a checkpoint
        venv.close()

    def load_policy(self, config: dict, checkpoint: Path, device: str = "cpu") -> SB3Policy:
        model = load_model(config, checkpoint, resolve_device(device))
        return SB3Policy(model, recurrent=bool(config["model"].get("recurrent")))


class SB3Policy:
    """An sb3 model as a batched policy that carries its recurrent state between calls."""

    action_format = "multidiscrete"  # several discrete choices come as one MultiDiscrete vector

    def __init__(self, model, recurrent: bool):
        self.model = model
        self.recurrent = recurrent
        self.reset(1)

    def reset(self, n_envs: int) -> None:
        self.state = None
        self.first = np.ones(n_envs, dtype=bool)

    def episode_started(self, mask: np.ndarray) -> None:
        self.first = self.first | np.asarray(mask, dtype=bool)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        if self.recurrent:
            action, self.state = self.model.predict(
                obs, state=self.state, episode_start=self.first, deterministic=deterministic
            )
        else:
            action, _ = self.model.predict(obs, deterministic=deterministic)
        self.first = np.zeros_like(self.first)
        return action

    def activity(self) -> dict[str, np.ndarray]:
        if not self.recurrent or self.state is None:
            return {}
        hidden, cell = self.state
        return {"lstm_h": np.asarray(hidden[-1]).copy(), "lstm_c": np.asarray(cell[-1]).copy()}
