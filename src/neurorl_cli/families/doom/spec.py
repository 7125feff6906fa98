"""A ViZDoom task's spec: a scenario, its screen size and frame skip, and protocols counted in episodes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from neurorl_cli.specs import Budget, Spec, TaskSpecBase


class DoomProtocol(Spec):
    """An evaluation of a ViZDoom task: whole episodes, counted in episodes rather than trials."""

    episodes: int = Field(10, gt=0)
    select: str = "true_reward"  # the metric that picks the best checkpoint (the unshaped episode reward)
    mode: Literal["max", "min"] = "max"
    seed: int = Field(100_000, ge=0)  # evaluation episodes come from their own seed, apart from training seeds
    kwargs: dict[str, Any] = Field(default_factory=dict)  # task settings that differ from training
    actions: Literal["greedy", "sampled"] = "greedy"

    @field_validator("kwargs")
    @classmethod
    def _settings_an_evaluation_may_change(cls, kwargs: dict):
        # The network's input is fixed by width/height, so an evaluation may change only these.
        allowed = {"scenario", "frame_skip", "shape_reward"}
        extra = sorted(set(kwargs) - allowed)
        if extra:
            raise ValueError(f"{', '.join(extra)}: an evaluation may change only {', '.join(sorted(allowed))}")
        return kwargs


class DoomTask(TaskSpecBase):
    """A ViZDoom scenario (families/doom/env.py): neurorl's `retinal_<name>` or one bundled with vizdoom."""

    family: Literal["doom"]
    kind: Literal["doom"] = "doom"
    scenario: str  # retinal_<name> (scenarios/) or a vizdoom scenario (basic, health_gathering, ...)
    frame_skip: int = Field(4, gt=0)  # action repeat, in tics
    width: int = Field(128, gt=0)  # observation size after resizing the 160x120 screen
    height: int = Field(72, gt=0)
    shape_reward: bool = True  # +1 whenever HEALTH rises; the engine's reward is reported apart
    protocols: dict[str, DoomProtocol] = Field(default_factory=lambda: {"default": DoomProtocol()})

    @field_validator("budget")
    @classmethod
    def _steps_only(cls, budget: Budget):
        if budget.units != ["steps"]:
            raise ValueError("a Doom task's budget counts agent steps: units = [\"steps\"]")
        return budget


ENVIRONMENT = ("scenario", "frame_skip", "width", "height", "shape_reward")  # a Doom task's environment settings


def environment(task: dict) -> dict:
    """What a Doom task's episodes come from (part of an evaluation's identity)."""
    return {key: task[key] for key in ENVIRONMENT}
