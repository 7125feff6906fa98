"""The catalog: TOML task and model specs -> validated specs -> one frozen, hashed config.

Specs come from three places, later ones shadowing earlier ones: the catalogs shipped with
the package (`tasks/`, `models/` at the top of the repository), the user's own folders
(`$NEURORL_HOME/tasks`, `$NEURORL_HOME/models`), and a spec file named on the command line.
`neurogym:<Id>` makes a task spec on the fly for any registered NeuroGym task.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import inspect
import itertools
import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import UserError
from .home import Home

PACKAGE_DIR = Path(__file__).resolve().parent


def bundled_dir(name: str) -> Path:
    """A folder shipped with neurorl: inside the installed package, or the source checkout's top."""
    inside = PACKAGE_DIR / "bundled" / name
    return inside if inside.is_dir() else PACKAGE_DIR.parents[1] / name


# ----------------------------------------------------------------------------- specs


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WrapperSpec(_Spec):
    name: str  # a NeuroGym wrapper class, e.g. PassReward
    kwargs: dict[str, Any] = Field(default_factory=dict)


class EnvSpec(_Spec):
    id: str | None = None  # a registered gymnasium/NeuroGym id
    entry_point: str | None = None  # or a user's own `module:Class`
    kwargs: dict[str, Any] = Field(default_factory=dict)
    wrappers: list[WrapperSpec] = Field(default_factory=list)
    # NeuroGym tasks never end an episode themselves. Each episode end costs sb3-contrib's
    # RecurrentPPO a slow step-by-step pass over the rollouts that contain it, so keep them rare.
    trials_per_episode: int = Field(1000, gt=0)

    @field_validator("wrappers", mode="before")
    @classmethod
    def _names_or_tables(cls, value):
        return [{"name": w} if isinstance(w, str) else w for w in value]


class Budget(_Spec):
    steps: int = Field(gt=0)
    checkpoint_every: int = Field(gt=0)
    units: list[Literal["steps", "trials", "episodes"]] = Field(default_factory=lambda: ["steps"])


class Protocol(_Spec):
    trials: int = Field(500, gt=0)
    select: str = "fraction_correct"  # the metric that picks the best checkpoint (higher is better)
    seed: int = 100_000  # evaluation trials come from their own seed, apart from training seeds
    kwargs: dict[str, Any] = Field(default_factory=dict)  # env kwargs that differ from training


class TaskSpec(_Spec):
    name: str
    family: Literal["neurogym"] = "neurogym"
    description: str = ""
    kind: Literal["decision", "trials"] = "trials"  # decision tasks get psychometric panels
    env: EnvSpec
    budget: Budget
    protocols: dict[str, Protocol] = Field(default_factory=lambda: {"default": Protocol()})

    @field_validator("env")
    @classmethod
    def _one_source(cls, env: EnvSpec):
        if (env.id is None) == (env.entry_point is None):
            raise ValueError("give exactly one of env.id (a registered id) or env.entry_point (module:Class)")
        return env


class ModelSpec(_Spec):
    name: str
    engine: Literal["sb3"]
    description: str = ""
    algo: Literal["RecurrentPPO", "PPO", "A2C"]
    policy: str
    recurrent: bool = False
    n_envs: int = Field(1, gt=0)  # environments stepped together by the library's vector env
    observations: list[Literal["vector", "image"]] = Field(default_factory=lambda: ["vector"])
    actions: list[Literal["discrete", "box", "multidiscrete", "multibinary"]]
    hyper: dict[str, Any] = Field(default_factory=dict)
    policy_kwargs: dict[str, Any] = Field(default_factory=dict)


# Fields that describe a spec but do not change what is trained: left out of the hash.
_DESCRIPTIVE = {"description"}


def _identity(spec: BaseModel) -> dict:
    return {k: v for k, v in spec.model_dump(mode="json").items() if k not in _DESCRIPTIVE}


# ----------------------------------------------------------------------------- loading


def _load_toml(path: Path, cls: type[_Spec]):
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{path}: not a readable TOML spec ({exc})") from exc
    data.setdefault("name", path.stem)
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise UserError(f"{path}: field '{field}': {first['msg']}") from exc


def _catalog(kind: str, home: Home | None) -> dict[str, Path]:
    folders = [bundled_dir(kind)]
    if home is not None:
        folders.append(home.root / kind)
    found: dict[str, Path] = {}
    for folder in folders:
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found[path.stem] = path
    return found


def task_names(home: Home | None = None) -> list[str]:
    return sorted(_catalog("tasks", home))


def model_names(home: Home | None = None) -> list[str]:
    return sorted(_catalog("models", home))


def _unknown(kind: str, name: str, known: list[str], hint: str) -> UserError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    maybe = f" Did you mean {', '.join(close)}?" if close else ""
    return UserError(f"unknown {kind} '{name}'.{maybe} {hint}")


def _load(kind: str, cls: type[_Spec], name: str, home: Home | None, hint: str):
    """A spec file path, or a catalog name (the user's folder shadows the shipped one)."""
    path = Path(name)
    if path.suffix == ".toml" and path.is_file():
        return _load_toml(path, cls)
    catalog = _catalog(f"{kind}s", home)
    if name not in catalog:
        raise _unknown(kind, name, list(catalog), hint)
    return _load_toml(catalog[name], cls)


def load_task(name: str, home: Home | None = None) -> TaskSpec:
    if name.startswith("neurogym:"):
        return neurogym_task(name.split(":", 1)[1])
    return _load("task", TaskSpec, name, home, "See `neurorl tasks`, or use neurogym:<Id> or a spec file.")


def load_model(name: str, home: Home | None = None) -> ModelSpec:
    return _load("model", ModelSpec, name, home, "See `neurorl models`, or give a spec file.")


def neurogym_task(env_id: str) -> TaskSpec:
    """Any registered NeuroGym task with its default kwargs."""
    from .envs import neurogym_env

    known = neurogym_env.registered_ids()
    if env_id not in known:
        raise _unknown("NeuroGym task", env_id, known, "List them with `neurorl tasks --neurogym`.")
    return TaskSpec(
        name=f"neurogym:{env_id}",
        description=f"NeuroGym {env_id} with its default settings.",
        env=EnvSpec(id=env_id),
        budget=Budget(steps=100_000, checkpoint_every=10_000),
    )


# ----------------------------------------------------------------------------- overrides


def parse_value(text: str) -> Any:
    """`--set` values: JSON where it parses (numbers, true/false, [lists]), else a string."""
    lowered = {"True": "true", "False": "false", "None": "null"}.get(text, text)
    try:
        return json.loads(lowered)
    except json.JSONDecodeError:
        return text


def split_grid(text: str) -> list[str]:
    """Bare commas make a grid; commas inside [...] belong to a list value."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


# Where a short key is looked up, in order: `--set model.learning_rate=...` means
# model.hyper.learning_rate; `--set task.dt=50` means task.env.kwargs.dt.
_SHORTCUTS = {"model": ["", "hyper.", "policy_kwargs."], "task": ["", "env.kwargs.", "env."]}


def _check_type(key: str, old: Any, new: Any) -> Any:
    if old is None:
        return new
    if isinstance(old, bool) or isinstance(new, bool):
        if isinstance(old, bool) and isinstance(new, bool):
            return new
    elif isinstance(old, float) and isinstance(new, int | float):
        return float(new)
    elif isinstance(old, int) and isinstance(new, int):
        return new
    elif isinstance(old, str) and isinstance(new, str):
        return new
    elif isinstance(old, list) and isinstance(new, list):
        return new
    elif isinstance(old, dict) and isinstance(new, dict):
        return new
    raise UserError(
        f"--set {key}: expected {type(old).__name__} like {json.dumps(old)}, got {json.dumps(new)}"
    )


def _library_defaults(section: str, sub: str, spec: dict) -> dict[str, Any]:
    """Keys a spec does not list but the library accepts, with their defaults."""
    if section == "task" and sub == "env.kwargs.":
        from .envs import neurogym_env

        return neurogym_env.constructor_defaults(spec["env"])
    if section == "model" and sub == "hyper.":
        from .backends import sb3

        return sb3.constructor_defaults(spec["algo"])
    return {}


def apply_override(section_specs: dict[str, dict], key: str, value: Any) -> None:
    section, _, rest = key.partition(".")
    if section not in _SHORTCUTS or not rest:
        raise UserError(f"--set {key}: keys start with 'task.' or 'model.' (e.g. model.learning_rate=1e-3)")
    spec = section_specs[section]
    for prefix in _SHORTCUTS[section]:
        path = (prefix + rest).split(".")
        node = spec
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node:
            node[path[-1]] = _check_type(key, node[path[-1]], value)
            return
    # Not in the spec: accept keys the library itself takes, typed by its default.
    for prefix in _SHORTCUTS[section]:
        if not prefix:
            continue
        defaults = _library_defaults(section, prefix, spec)
        head = rest.split(".")[0]
        if head in defaults:
            node = spec
            for part in (prefix + rest).split(".")[:-1]:
                node = node.setdefault(part, {})
            node[rest.split(".")[-1]] = _check_type(key, defaults[head], value) if "." not in rest else value
            return
    raise UserError(f"--set {key}: no such setting in the {section} spec '{spec['name']}'; see `neurorl {section}s --json`")


# ----------------------------------------------------------------------------- config


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def config_hash(obj: Any) -> str:
    return hashlib.blake2b(canonical_json(obj).encode(), digest_size=16).hexdigest()


def resolve(
    task: TaskSpec,
    model: ModelSpec,
    overrides: list[str] | None = None,
    steps: int | None = None,
    checkpoint_every: int | None = None,
) -> list[dict]:
    """Task + model + `--set` overrides + budget -> frozen configs (several when a grid is given).

    Identity: a config's hash covers task, model and budget (not device, launcher, jobs or
    paths); the experiment is that hash, and each seed's run is the experiment plus its seed.
    """
    grid: list[list[tuple[str, Any]]] = []
    for item in overrides or []:
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise UserError(f"--set {item}: write it as section.key=value, e.g. model.learning_rate=1e-3")
        grid.append([(key.strip(), parse_value(v.strip())) for v in split_grid(raw)])

    configs = []
    for combo in itertools.product(*grid):
        specs = {"task": copy.deepcopy(_identity(task)), "model": copy.deepcopy(_identity(model))}
        for key, value in combo:
            apply_override(specs, key, value)
        try:  # re-validate: an override must leave a valid spec
            TaskSpec.model_validate(specs["task"])
            ModelSpec.model_validate(specs["model"])
        except ValidationError as exc:
            first = exc.errors()[0]
            raise UserError(f"--set: {'.'.join(map(str, first['loc']))}: {first['msg']}") from exc
        budget = dict(specs["task"]["budget"])
        budget.pop("units", None)
        if steps is not None:
            budget["steps"] = steps
        if checkpoint_every is not None:
            budget["checkpoint_every"] = checkpoint_every
        if budget["steps"] <= 0 or budget["checkpoint_every"] <= 0:
            raise UserError("--steps and --checkpoint-every must be positive")
        budget["checkpoint_every"] = min(budget["checkpoint_every"], budget["steps"])
        config = {"task": specs["task"], "model": specs["model"], "budget": budget}
        config["overrides"] = {k: v for k, v in combo}
        configs.append(config)
    return configs


def experiment_hash(config: dict) -> str:
    return config_hash({k: config[k] for k in ("task", "model", "budget")})


def run_hash(config: dict, seed: int) -> str:
    return config_hash({"experiment": experiment_hash(config), "seed": seed})


def protocol_hash(env: dict, protocol: dict) -> str:
    """Identity of an evaluation: the protocol (trials, seed, kwargs) and the environment."""
    return config_hash({"protocol": protocol, "env": env})


def parse_seeds(text: str) -> list[int]:
    """`0-4`, `3`, `0,2,5` or a mix."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, dash, hi = part.strip().partition("-")
            seeds.extend(range(int(lo), int(hi) + 1) if dash else [int(lo)])
    except ValueError as exc:
        raise UserError(f"--seeds {text}: write seeds as 0-4, 3 or 0,2,5") from exc
    if not seeds or min(seeds) < 0:
        raise UserError(f"--seeds {text}: seeds are non-negative integers")
    return sorted(set(seeds))


def describe_signature(fn) -> dict[str, Any]:
    """Defaults of a constructor's keyword parameters (for keys a spec does not list)."""
    params = inspect.signature(fn).parameters.items()
    return {name: p.default for name, p in params if p.default is not inspect.Parameter.empty}


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "neurorl"


def _spaces(env: dict) -> tuple[str, str, str, str]:
    """(observation kind, action kind, and their descriptions) of a task's environment.

    Finding them means building the environment, and importing NeuroGym imports torch (2-3 s).
    For registered ids the answer depends only on the spec and the library versions, so it is
    cached per user; a user's own `module:Class` is always built afresh, since its code may change.
    """
    from importlib.metadata import version

    from . import atomic
    from .envs import neurogym_env

    key = config_hash({"env": env, "neurogym": version("neurogym"), "gymnasium": version("gymnasium")})
    cache = _cache_dir() / "spaces.json"
    known: dict = {}
    if env.get("id"):
        try:
            known = json.loads(cache.read_text())
        except (OSError, ValueError):
            known = {}
        if key in known:
            return tuple(known[key])
    obs_kind, act_kind, obs_space, act_space = neurogym_env.spaces(env)
    found = (obs_kind, act_kind, str(obs_space), str(act_space))
    if env.get("id"):
        try:
            atomic.write_json(cache, {**known, key: list(found)})
        except OSError:
            pass  # a cache we cannot write only costs time
    return found


def check_pair(config: dict) -> None:
    """Refuse a task/model pair whose spaces do not fit, before anything is stored."""
    task, model = config["task"], config["model"]
    obs_kind, act_kind, obs_space, act_space = _spaces(task["env"])
    if obs_kind not in model["observations"]:
        raise UserError(
            f"{model['name']} takes {'/'.join(model['observations'])} observations, but {task['name']} "
            f"gives {obs_kind} ({obs_space}): choose another model (see `neurorl tasks`)"
        )
    if act_kind not in model["actions"]:
        raise UserError(
            f"{model['name']} acts in {'/'.join(model['actions'])} spaces, but {task['name']} needs "
            f"{act_kind} ({act_space}): choose another model (see `neurorl tasks`)"
        )
