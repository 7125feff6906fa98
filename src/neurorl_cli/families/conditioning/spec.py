"""A conditioning task's spec: a cue-reward schedule."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from neurorl_cli.specs import TaskSpecBase


class ConditioningTask(TaskSpecBase):
    """Cue-reward schedules simulated as tensors (no agent acting): see families/conditioning/schedule.py."""

    family: Literal["conditioning"]
    kind: Literal["conditioning"] = "conditioning"
    schedule: dict[str, Any]

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, schedule: dict):
        from neurorl_cli.families.conditioning.schedule import Schedule

        Schedule.model_validate(schedule)
        return schedule
