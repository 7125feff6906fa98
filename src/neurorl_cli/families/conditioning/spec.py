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
        # A reward that jitters says by which rule (drl_sim's, "reward"), so that the config names
        # what it computes: a stored config without the key keeps the earlier rule (schedule.Reward).
        types = [{**t, "rewards": [{**r, "jitter_scale": "reward"} if r.get("jitter") and "jitter_scale" not in r else r
                                   for r in t.get("rewards", [])]} for t in schedule.get("trial_types", [])]
        return {**schedule, "trial_types": types} if "trial_types" in schedule else schedule
