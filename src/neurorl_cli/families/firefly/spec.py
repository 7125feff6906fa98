"""A firefly navigation task's spec (the modularity study)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from neurorl_cli.specs import TaskSpecBase, check_protocols


class FireflyTask(TaskSpecBase):
    """Firefly navigation (the modularity study): a batched torch environment, families/firefly/env.py."""

    family: Literal["firefly"]
    kind: Literal["firefly"] = "firefly"
    env: dict[str, Any] = Field(default_factory=dict)  # the environment's settings

    @model_validator(mode="after")
    def _valid_env(self):
        from neurorl_cli.envs.batched import settings_schema
        from neurorl_cli.families.firefly.env import Firefly

        settings_schema(Firefly).model_validate(self.env)
        Firefly(n=1, seed=0, **self.env)
        check_protocols(self, settings_schema(Firefly))
        return self
