"""A meta-RL task's spec: Harlow or two-step, batched torch environments of our own."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from neurorl_cli.specs import TaskSpecBase, check_protocols


class MetaRLTask(TaskSpecBase):
    """Harlow and two-step: batched torch environments of our own (families/metarl/envs.py)."""

    family: Literal["meta-rl"]
    kind: Literal["harlow", "two-step"]
    env: dict[str, Any] = Field(default_factory=dict)  # the environment's settings

    @model_validator(mode="after")
    def _valid_env(self):
        from neurorl_cli.envs.batched import settings_schema
        from neurorl_cli.families.metarl import envs

        envs.check(self.kind, self.env)
        check_protocols(self, settings_schema(envs.env_class(self.kind)))
        return self
