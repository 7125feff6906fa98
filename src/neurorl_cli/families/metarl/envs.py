"""Harlow and two-step by `kind`: their batched environments, settings and gymnasium views."""

from __future__ import annotations

import inspect
from typing import Any

from neurorl_cli.envs.batched import BatchedEnv, SingleEnv, settings_schema
from neurorl_cli.families.metarl.harlow import Harlow
from neurorl_cli.families.metarl.two_step import TwoStep

def env_class(kind: str) -> type[BatchedEnv]:
    """The task spec's `kind` -> its batched environment class."""
    return {"harlow": Harlow, "two-step": TwoStep}[kind]


def env_kwargs(kind: str) -> dict[str, Any]:
    """The task settings a kind accepts, with their defaults (what `--set task.X` may change)."""
    skip = {"self", "n", "seed", "device"}
    params = inspect.signature(env_class(kind).__init__).parameters.items()
    return {k: p.default for k, p in params if k not in skip and p.default is not inspect.Parameter.empty}


def make(task: dict, n: int, seed: int, device: str = "cpu", extra_kwargs: dict | None = None) -> BatchedEnv:
    """A task spec's batched environment; `extra_kwargs` are a protocol's changes."""
    return env_class(task["kind"])(n=n, seed=seed, device=device, **{**task.get("env", {}), **(extra_kwargs or {})})


def trials_per_episode(task: dict, extra_kwargs: dict | None = None) -> int:
    """From the settings alone (every kind names it `trials`), without building the environment."""
    return int({**env_kwargs(task["kind"]), **task.get("env", {}), **(extra_kwargs or {})}["trials"])


def single_env(kind: str) -> type[SingleEnv]:
    """The gymnasium view of a kind (HarlowEnv, TwoStepEnv)."""
    return {"harlow": HarlowEnv, "two-step": TwoStepEnv}[kind]


def check(kind: str, kwargs: dict) -> None:
    """Raise ValueError (a pydantic ValidationError for a value out of its bounds) when `kwargs`
    do not make a valid environment of this kind."""
    known = env_kwargs(kind)
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)} for a {kind} task; known: {', '.join(known)}")
    settings_schema(env_class(kind)).model_validate(kwargs)
    env_class(kind)(n=1, seed=0, **kwargs)



# -- gymnasium views


class HarlowEnv(SingleEnv):
    batched_class = Harlow


class TwoStepEnv(SingleEnv):
    batched_class = TwoStep
