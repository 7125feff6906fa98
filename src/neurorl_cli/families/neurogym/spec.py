"""A NeuroGym task's spec: a registered id or a user's `module:Class`, its kwargs and wrappers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from neurorl_cli.specs import LIBRARY, NonNegative, Spec, TaskSpecBase


class NeuroGymKwargs(BaseModel):
    """`env.kwargs` of a NeuroGym task: the settings many NeuroGym tasks share."""

    model_config = LIBRARY
    dt: float = Field(None, gt=0)  # ms per step
    sigma: float = Field(None, ge=0)  # input noise
    dim_ring: int = Field(None, ge=1)  # stimulus ring size
    cohs: list[NonNegative] | None = None  # stimulus coherences
    prod_margin: float = Field(None, ge=0)
    rewards: dict[str, float] | None = None  # reward per outcome (abort, correct, fail, ...); any sign
    # period -> ms, or a distribution (["uniform", [300, 700]]) NeuroGym checks when it is built
    timing: dict[str, NonNegative | list[Any]] | None = None


class WrapperSpec(Spec):
    name: str  # a NeuroGym wrapper class, e.g. PassReward
    kwargs: dict[str, Any] = Field(default_factory=dict)


class EnvSpec(Spec):
    id: str | None = None  # a registered gymnasium/NeuroGym id
    entry_point: str | None = None  # or a user's own `module:Class`
    kwargs: dict[str, Any] = Field(default_factory=dict)
    wrappers: list[WrapperSpec] = Field(default_factory=list)
    # NeuroGym tasks never end an episode themselves. Each episode end costs sb3-contrib's
    # RecurrentPPO a slow step-by-step pass over the rollouts that contain it, but in our runs
    # (perceptual-decision-making, 100k steps) 100-trial episodes learned in 5 of 5 seeds and
    # 1000-trial episodes in 3 of 5.
    trials_per_episode: int = Field(100, gt=0)

    @field_validator("wrappers", mode="before")
    @classmethod
    def _names_or_tables(cls, value):
        return [{"name": w} if isinstance(w, str) else w for w in value]

    @field_validator("kwargs")
    @classmethod
    def _bounded(cls, kwargs: dict):
        NeuroGymKwargs.model_validate(kwargs)
        return kwargs  # as written: the library's defaults stay out of the config and its hash


class NeuroGymTask(TaskSpecBase):
    family: Literal["neurogym"] = "neurogym"
    kind: Literal["decision", "trials"] = "trials"  # decision tasks get psychometric panels
    env: EnvSpec

    @field_validator("env")
    @classmethod
    def _one_source(cls, env: EnvSpec):
        if (env.id is None) == (env.entry_point is None):
            raise ValueError("give exactly one of env.id (a registered id) or env.entry_point (module:Class)")
        return env
