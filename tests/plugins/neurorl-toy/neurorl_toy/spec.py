"""The cue-match task spec: one member of neurorl's task union (`family = "toy"`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from neurorl_cli.specs import Spec, TaskSpecBase, check_protocols


class CueMatchSettings(Spec):
    """`env` of a cue-match task: every setting typed and bounded (CueMatchEnv's arguments)."""

    fixation: int = Field(1, ge=0, le=100)  # steps before the cue
    delay: int = Field(0, ge=0, le=100)  # steps between the cue and the response
    sigma: float = Field(0.1, ge=0, le=10)  # Gaussian noise on the cue inputs
    trials_per_episode: int = Field(20, gt=0, le=100_000)


class ToyTask(TaskSpecBase):
    family: Literal["toy"] = "toy"
    env: dict[str, Any] = Field(default_factory=dict)

    @field_validator("env")
    @classmethod
    def _bounded(cls, env: dict) -> dict:
        CueMatchSettings.model_validate(env)
        return env  # as written: defaults stay out of the config and its hash

    @model_validator(mode="after")
    def _protocols_keep_bounds(self):
        check_protocols(self, CueMatchSettings)
        return self


def settings(task: dict, extra: dict | None = None) -> dict:
    """The environment's arguments: the spec's `env`, a protocol's kwargs over it, defaults filled in."""
    return CueMatchSettings.model_validate({**task.get("env", {}), **(extra or {})}).model_dump()
