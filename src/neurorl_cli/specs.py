"""The parts every task and model spec is built from, shared by the catalog, families and engines.

A family's task spec subclasses `TaskSpecBase` and adds `family: Literal[<its name>]`; an
engine's model spec subclasses `ModelSpecBase` and adds `engine: Literal[<its name>]`.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from neurorl_cli.errors import UserError


class Spec(BaseModel):
    # nan and inf pass every bound (nan compares false; inf is greater than any `gt`), so no
    # setting of a spec may be either.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# Settings neurorl hands to a library (NeuroGym, stable-baselines3): the numeric ones it knows
# are typed and bounded; any other key passes on for the library to judge when it is built
# (training.check_settings). A bounded field left out takes the library's default.
LIBRARY = ConfigDict(extra="allow", allow_inf_nan=False)
PositiveInt = Annotated[int, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


class Budget(Spec):
    steps: int | None = Field(None, gt=0)  # agent (environment) steps
    trials: int | None = Field(None, gt=0)  # for tasks whose budget counts trials
    checkpoint_every: int = Field(gt=0)  # in the budget's unit
    units: list[Literal["steps", "trials"]] = Field(default_factory=lambda: ["steps"])

    @model_validator(mode="after")
    def _default_in_its_unit(self):
        if getattr(self, self.units[0]) is None:
            raise ValueError(f"the default budget is in {self.units[0]}: set budget.{self.units[0]}")
        return self


class Protocol(Spec):
    trials: int = Field(500, gt=0)
    select: str = "fraction_correct"  # the metric that picks the best checkpoint
    mode: Literal["max", "min"] = "max"  # whether the best checkpoint has the highest or lowest
    seed: int = Field(100_000, ge=0)  # evaluation trials come from their own seed, apart from training seeds
    kwargs: dict[str, Any] = Field(default_factory=dict)  # env kwargs that differ from training
    # greedy: the most probable action; sampled: drawn from the policy, for analyses of choice
    # variability such as two-step stay probabilities.
    actions: Literal["greedy", "sampled"] = "greedy"


class TaskSpecBase(Spec):
    name: str
    description: str = ""
    budget: Budget
    protocols: dict[str, Protocol] = Field(default_factory=lambda: {"default": Protocol()})
    # Settings a model should start from on this task, by model name (applied before --set),
    # e.g. the reference's smaller learning rate for meta-a2c-lstm on two-step.
    model_defaults: dict[str, dict[str, Any]] = Field(default_factory=dict)


class ModelSpecBase(Spec):
    name: str
    description: str = ""
    hyper: dict[str, Any] = Field(default_factory=dict)


def check_protocols(task: TaskSpecBase, schema: type[BaseModel]) -> None:
    """An evaluation protocol's kwargs change the environment's settings: they keep its bounds."""
    for name, protocol in task.protocols.items():
        try:
            schema.model_validate({**task.env, **protocol.kwargs})
        except ValidationError as exc:
            field, message = first_error(exc, {})
            raise ValueError(f"protocols.{name}.kwargs.{field}: {message}") from None


# What pydantic puts in an error's path for the member of a union it tried: not a field.
_UNION_MEMBER = re.compile(r"(constrained-)?(float|int|str|bool)|(list|dict|function-\w+)\[.*\]")


def first_error(exc: ValidationError, data: dict) -> tuple[str, str]:
    """The first error's field path, without the union tags pydantic puts in it."""
    first = exc.errors()[0]
    loc = list(first["loc"])
    if loc and loc[0] in (data.get("family"), data.get("engine")):
        loc = loc[1:]
    loc = [part for part in loc if not (isinstance(part, str) and _UNION_MEMBER.fullmatch(part))]
    return ".".join(map(str, loc)) or "(top)", first["msg"].removeprefix("Value error, ")


def describe_signature(fn) -> dict[str, Any]:
    """Defaults of a constructor's keyword parameters (for keys a spec does not list)."""
    params = inspect.signature(fn).parameters.items()
    return {name: p.default for name, p in params if p.default is not inspect.Parameter.empty}


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def config_hash(obj: Any) -> str:
    """The identity of a config: blake2b of its canonical JSON."""
    return hashlib.blake2b(canonical_json(obj).encode(), digest_size=16).hexdigest()


def unknown(kind: str, name: str, known: list[str], hint: str):
    """A UserError for a name that is not known, with the close ones."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    maybe = f" Did you mean {', '.join(close)}?" if close else ""
    return UserError(f"unknown {kind} '{name}'.{maybe} {hint}")


def budget_total(config: dict) -> tuple[str, int]:
    """(unit, total) of a resolved config's budget."""
    budget = config["budget"]
    unit = "steps" if "steps" in budget else "trials"
    return unit, int(budget[unit])
