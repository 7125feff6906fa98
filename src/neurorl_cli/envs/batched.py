"""Our own tasks as batched torch environments, and a gymnasium view of one of them.

A `BatchedEnv` steps `n` episodes at once as tensors on one device. The meta-RL tasks
(Harlow, two-step) have episodes of a fixed number of steps, so every episode of a batch
starts and ends together and one episode is one whole unroll.

Meta-RL agents see more than the task's stimulus: the previous action (one-hot), the
previous reward and the time step within the episode (Wang et al. 2018). These "meta
inputs" belong to the task's observation (`meta_inputs = true`, the default), so every
model that trains on the task, ours or a library's, is given the same inputs; setting it
false is the ablation.

Trial events come back in `info` as tensors over the batch: `trial_end` (a trial finished
at this step) and the per-trial fields each task defines (`correct`, `choice`, ...).
"""

from __future__ import annotations

import functools
import inspect
import typing
from abc import ABC, abstractmethod
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, create_model

class BatchedEnv(ABC):
    """`n` episodes stepped together. Subclasses set `stimulus_dim`, `n_actions`,
    `episode_steps`, `trials_per_episode`, and implement `_reset` and `_step`."""

    stimulus_dim: int
    n_actions: int
    episode_steps: int
    trials_per_episode: int
    fixed_length = True  # every episode of a batch starts and ends together

    def __init__(self, n: int, seed: int, device: str | torch.device = "cpu", meta_inputs: bool = True):
        if n < 1:
            raise ValueError("n must be at least 1")
        self.n = n
        self.device = torch.device(device)
        self.meta_inputs = bool(meta_inputs)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))
        self.t = 0

    @property
    def obs_dim(self) -> int:
        return self.stimulus_dim + (self.n_actions + 2 if self.meta_inputs else 0)

    def rand(self, *shape: int) -> torch.Tensor:
        """Uniform draws with the batch's rows first (`shape[0] == self.n` where the rows differ):
        every random draw of a task goes through here, so that per-seed streams can split it."""
        if self.streams is None:
            return torch.rand(*shape, generator=self.generator, device=self.device)
        if not shape or shape[0] != self.n:
            raise ValueError(f"with per-seed streams every draw is per row: shape {shape} must start with n={self.n}")
        block = self.n // len(self.streams)
        return torch.cat([torch.rand(block, *shape[1:], generator=g, device=self.device) for g in self.streams])

    # -- seed groups: several seeds' episodes stepped as one batch
    streams: list[torch.Generator] | None = None  # one generator per block of rows, or None (one stream)

    def split_streams(self, seeds: list[int]) -> None:
        """Split the `n` rows into `len(seeds)` blocks of `n / len(seeds)` episodes, block i drawing
        from its own generator seeded with `seeds[i]`, exactly as a solo env of that block's size
        and seed draws (tasks draw only through `rand`, each draw over the rows). Call it before
        the first `reset`: the solo stream (`self.generator`) is then unused."""
        if not seeds or self.n % len(seeds):
            raise ValueError(f"{self.n} episodes do not split into {len(seeds)} equal blocks")
        self.streams = []
        for seed in seeds:
            g = torch.Generator(device=self.device)
            g.manual_seed(int(seed))
            self.streams.append(g)

    def keep_streams(self, keep: list[int]) -> None:
        """Keep only the blocks `keep` (in that order): the batch shrinks to their rows from the
        next `reset` on (a seed that ended its budget drops out of the group)."""
        block = self.n // len(self.streams)
        self.streams = [self.streams[i] for i in keep]
        self.n = block * len(self.streams)

    def reset(self) -> torch.Tensor:
        self.t = 0
        self.prev_action = torch.zeros(self.n, dtype=torch.long, device=self.device)
        self.prev_reward = torch.zeros(self.n, device=self.device)
        self._first = True
        return self._observe(self._reset())

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(observation, reward, done, info); every episode of the batch ends at the same step."""
        action = torch.as_tensor(action, device=self.device).long().reshape(self.n)
        stimulus, reward, info = self._step(action)
        self.t += 1
        self.prev_action, self.prev_reward, self._first = action, reward, False
        done = torch.full((self.n,), self.t >= self.episode_steps, device=self.device)
        return self._observe(stimulus), reward, done, info

    def _observe(self, stimulus: torch.Tensor) -> torch.Tensor:
        if not self.meta_inputs:
            return stimulus
        previous = torch.nn.functional.one_hot(self.prev_action, self.n_actions).float()
        if self._first:
            previous.zero_()  # no action has been taken yet
        time = torch.full((self.n, 1), self.t / self.episode_steps, device=self.device)
        return torch.cat([stimulus, previous, self.prev_reward[:, None], time], dim=1)

    # -- for subclasses
    @abstractmethod
    def _reset(self) -> torch.Tensor:
        """Draw new episodes; return the first stimulus (n, stimulus_dim)."""

    @abstractmethod
    def _step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Apply the actions at step `self.t`: (next stimulus, reward, trial info)."""


@functools.cache
def settings_schema(cls: type) -> type[BaseModel]:
    """The settings a task spec may give an environment class: its constructor's keyword
    parameters, typed by their annotations, bounded by the class's `BOUNDS`, never nan or inf.
    Made from the constructor so that a new parameter is in the schema (and its tests) at once."""
    hints = typing.get_type_hints(cls.__init__)
    fields = {
        name: (hints.get(name, Any), Field(p.default, **cls.BOUNDS.get(name, {})))
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name not in ("self", "n", "seed", "device") and p.default is not inspect.Parameter.empty
    }
    config = ConfigDict(extra="forbid", allow_inf_nan=False)
    return create_model(f"{cls.__name__}Settings", __config__=config, **fields)


# -- gymnasium view ------------------------------------------------------------------------


class SingleEnv(gym.Env):
    """One episode of a batched task as a gymnasium environment (for sb3 and other libraries).

    `info` carries NeuroGym's names, so code written for NeuroGym reads it: `new_trial` at a
    trial's last step and `performance` (1 correct, 0 not) with it.
    """

    metadata = {"render_modes": []}
    batched_class: type[BatchedEnv]  # the task a subclass views

    def __init__(self, seed: int | None = None, **kwargs):
        self._kwargs = kwargs
        self._seed = 0 if seed is None else int(seed)
        self._episodes = 0
        self.env = self.batched_class(n=1, seed=self._seed, **kwargs)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.env.obs_dim,), np.float32)
        self.action_space = gym.spaces.Discrete(self.env.n_actions)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:  # a new stream of episodes from this seed
            self.env.generator.manual_seed(int(seed))
        return self.env.reset()[0].numpy().astype(np.float32), {}

    def step(self, action):
        obs, reward, done, info = self.env.step(torch.as_tensor([int(action)]))
        out: dict[str, Any] = {}
        if bool(info["trial_end"][0]):
            out["new_trial"] = True
            out.update({k: v[0].item() for k, v in info.items() if k != "trial_end"})
            if "correct" in info:
                out["performance"] = float(info["correct"][0])
        return obs[0].numpy().astype(np.float32), float(reward[0]), bool(done[0]), False, out
