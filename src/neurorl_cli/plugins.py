"""The table of task families and training engines: the built-in ones, then those other
packages declare through the entry-point groups `neurorl.families` and `neurorl.engines`.

The core asks "which family?" and "which engine?" only here, by the `family` of a task spec
and the `engine` of a model spec. A plug-in that fails to load is reported once and left out,
so one broken package does not stop neurorl; a plug-in cannot replace a built-in of the same name.
"""

from __future__ import annotations

import functools
import sys
from importlib import import_module
from importlib.metadata import entry_points

from neurorl_cli.errors import UserError
from neurorl_cli.interfaces import Engine, Family

FAMILY_GROUP = "neurorl.families"
ENGINE_GROUP = "neurorl.engines"

# The built-in families and engines, as their objects' import paths. A task spec that names no
# family (one written before families existed) belongs to the first family here.
BUILTIN_FAMILIES = [
    "neurorl_cli.families.neurogym.family:family",
    "neurorl_cli.families.conditioning.family:family",
    "neurorl_cli.families.metarl.family:family",
    "neurorl_cli.families.firefly.family:family",
    "neurorl_cli.families.doom.family:family",
]
BUILTIN_ENGINES = [
    "neurorl_cli.engines.sb3.engine:engine",
    "neurorl_cli.engines.native.engine:engine",
    "neurorl_cli.engines.sample_factory.engine:engine",
]


def _load(ref: str):
    module, _, attr = ref.partition(":")
    return getattr(import_module(module), attr)


def _instance(obj):
    return obj() if isinstance(obj, type) else obj


@functools.cache
def _builtin(refs: tuple[str, ...]) -> dict:
    """The built-in objects by name, in the table's order (loaded once)."""
    return {obj.name: obj for obj in (_instance(_load(ref)) for ref in refs)}


def _table(builtin: list[str], group: str, kind: type) -> dict:
    found = dict(_builtin(tuple(builtin)))
    for point in entry_points(group=group):
        try:
            obj = _instance(point.load())
        except Exception as exc:  # a third party's bug must not stop neurorl: say so, go on without it
            print(f"warning: the {group} plug-in '{point.name}' ({point.value}) failed to load and is left out: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        if not isinstance(obj, kind):
            print(f"warning: the {group} plug-in '{point.name}' ({point.value}) does not provide the {kind.__name__} interface "
                  "(see neurorl_cli.interfaces) and is left out", file=sys.stderr)
        elif obj.name in found:
            print(f"warning: the {group} plug-in '{point.name}' ({point.value}) is named '{obj.name}' like one "
                  "already registered and is left out", file=sys.stderr)
        else:
            found[obj.name] = obj
    return found


@functools.cache
def families() -> dict[str, Family]:
    """Every task family by name."""
    return _table(BUILTIN_FAMILIES, FAMILY_GROUP, Family)


@functools.cache
def engines() -> dict[str, Engine]:
    """Every training engine by name."""
    return _table(BUILTIN_ENGINES, ENGINE_GROUP, Engine)


def default_family() -> str:
    """The family of a task spec that names none (specs written before families existed)."""
    return next(iter(_builtin(tuple(BUILTIN_FAMILIES))))


def family(name: str) -> Family:
    try:
        return families()[name]
    except KeyError:
        raise UserError(f"no task family '{name}' is installed (installed: {', '.join(sorted(families()))}); "
                        "a plug-in family is a Python package: pip install it") from None


def engine(name: str) -> Engine:
    try:
        return engines()[name]
    except KeyError:
        raise UserError(f"no training engine '{name}' is installed (installed: {', '.join(sorted(engines()))}); "
                        "a plug-in engine is a Python package: pip install it") from None


def family_of(config_or_task: dict) -> Family:
    """The family of a config (or of its `task` table)."""
    task = config_or_task.get("task", config_or_task)
    return family(task.get("family") or default_family())


def engine_of(config_or_model: dict) -> Engine:
    """The engine of a config (or of its `model` table)."""
    model = config_or_model.get("model", config_or_model)
    return engine(model["engine"])


def register_gym_ids() -> None:
    """`neurorl/<Name>-v0` ids for gymnasium, from every family's `gym_ids`.

    gymnasium calls this through the `gymnasium.envs` entry point (pyproject) inside the `neurorl`
    namespace while it is itself being imported, so family objects must not import gymnasium when
    loaded (their environments load only when an id is made), and the registry is reached through
    `gymnasium.envs.registration` (the top-level package is not ready yet)."""
    from gymnasium.envs import registration

    in_namespace = registration.current_namespace == "neurorl"
    # The built-in families only: a plug-in's module may import gymnasium, which is being imported
    # now; a plug-in registers its own ids through its own `gymnasium.envs` entry point.
    for family in _builtin(tuple(BUILTIN_FAMILIES)).values():
        for name, (entry, kwargs) in family.gym_ids().items():
            if f"neurorl/{name}" not in registration.registry:
                registration.register(id=name if in_namespace else f"neurorl/{name}", entry_point=entry, kwargs=kwargs)
