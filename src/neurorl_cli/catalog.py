"""The catalog: TOML task and model specs -> validated specs -> one frozen, hashed config.

Specs come from three places, later ones shadowing earlier ones: the catalogs shipped with
the package (`tasks/`, `models/` at the top of the repository), the user's own folders
(`$NEURORL_HOME/tasks`, `$NEURORL_HOME/models`), and a spec file named on the command line.
`neurogym:<Id>` makes a task spec on the fly for any registered NeuroGym task.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from neurorl_cli import plugins
from neurorl_cli.errors import UserError
from neurorl_cli.home import Home, bundled_dir
from neurorl_cli.specs import config_hash, first_error, unknown

# The catalog's names for what the union accepts (a family's or an engine's spec model).
TaskSpec = BaseModel
ModelSpec = BaseModel

# ----------------------------------------------------------------------------- specs


def _union(specs: list[type[BaseModel]], key: str) -> TypeAdapter:
    members = tuple(specs)
    if len(members) == 1:
        return TypeAdapter(members[0])
    return TypeAdapter(Annotated[Union[members], Field(discriminator=key)])  # noqa: UP007 - a runtime union


@functools.cache
def _task_adapter() -> TypeAdapter:
    """Task specs: the union of every registered family's spec, told apart by `family`."""
    return _union([f.task_spec for f in plugins.families().values()], "family")


@functools.cache
def _model_adapter() -> TypeAdapter:
    """Model specs: the union of every registered engine's spec, told apart by `engine`."""
    return _union([e.model_spec for e in plugins.engines().values()], "engine")


# Fields that describe a spec but do not change what is trained: left out of the hash.
_DESCRIPTIVE = {"description"}


# Fields added after configs were first stored, left out at their defaults so that those
# configs (and their hashes) stay what they were.
_ADDED = {"model_defaults": {}, "actions": None, "encoder": None}
_ADDED_TO_PROTOCOLS = {"actions": "greedy"}


def _identity(spec: BaseModel) -> dict:
    out = {k: v for k, v in spec.model_dump(mode="json").items()
           if k not in _DESCRIPTIVE and not (k in _ADDED and v == _ADDED[k])}
    for protocol in out.get("protocols", {}).values():
        for key, default in _ADDED_TO_PROTOCOLS.items():
            if protocol.get(key) == default:
                del protocol[key]
    return out


# ----------------------------------------------------------------------------- loading


def _load_toml(path: Path, adapter: TypeAdapter):
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{path}: not a readable TOML spec ({exc})") from exc
    data.setdefault("name", path.stem)
    if adapter is _task_adapter():
        data.setdefault("family", plugins.default_family())
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        field, message = first_error(exc, data)
        raise UserError(f"{path}: field '{field}': {message}") from exc


def _catalog(kind: str, home: Home | None) -> dict[str, Path]:
    folders = [bundled_dir(kind)]
    if kind == "tasks":  # tasks a plug-in family ships
        folders += [f.catalog for f in plugins.families().values() if f.catalog is not None]
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


def _load(kind: str, adapter: TypeAdapter, name: str, home: Home | None, hint: str):
    """A spec file path, or a catalog name (the user's folder shadows the shipped one)."""
    path = Path(name)
    if path.suffix == ".toml" and path.is_file():
        return _load_toml(path, adapter)
    catalog = _catalog(f"{kind}s", home)
    if name not in catalog:
        raise unknown(kind, name, list(catalog), hint)
    return _load_toml(catalog[name], adapter)


def load_task(name: str, home: Home | None = None) -> TaskSpec:
    for family in plugins.families().values():  # a task a family makes from its name (neurogym:<Id>)
        spec = family.named_task(name)
        if spec is not None:
            return spec
    return _load("task", _task_adapter(), name, home, "See `neurorl tasks`, or give a spec file.")


def load_model(name: str, home: Home | None = None) -> ModelSpec:
    return _load("model", _model_adapter(), name, home, "See `neurorl models`, or give a spec file.")


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


def _shortcuts(section: str, spec: dict) -> list[str]:
    """Where a short key is looked up, in order: the spec's top level, then the paths its family or
    engine lists (`--set model.learning_rate=...` means model.hyper.learning_rate; `--set task.dt=50`
    on a NeuroGym task means task.env.kwargs.dt)."""
    owner = plugins.family_of(spec) if section == "task" else plugins.engine_of(spec)
    return ["", *owner.set_paths]


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


def _library_defaults(section: str, prefix: str, spec: dict) -> dict[str, Any]:
    """Keys a spec does not list but its family or engine accepts under `prefix`, with their defaults."""
    owner = plugins.family_of(spec) if section == "task" else plugins.engine_of(spec)
    return owner.setting_defaults(spec, prefix)


def _parent(spec: dict, path: list[str], create: bool = False) -> dict | None:
    """The table holding the last key of a dotted path (made on the way when `create`)."""
    node: Any = spec
    for part in path[:-1]:
        if not isinstance(node, dict):
            return None
        node = node.setdefault(part, {}) if create else node.get(part)
    return node if isinstance(node, dict) else None


def apply_override(section_specs: dict[str, dict], key: str, value: Any) -> str:
    """Set one `--set` value; returns the path it was set at (e.g. model.hyper.n_steps)."""
    section, _, rest = key.partition(".")
    if section not in ("task", "model") or not rest:
        raise UserError(f"--set {key}: keys start with 'task.' or 'model.' (e.g. model.learning_rate=1e-3)")
    spec, name = section_specs[section], rest.split(".")[-1]
    shortcuts = _shortcuts(section, spec)
    for prefix in shortcuts:
        node = _parent(spec, (prefix + rest).split("."))
        if node is not None and name in node:
            node[name] = _check_type(key, node[name], value)
            return f"{section}.{prefix}{rest}"
    # Not in the spec: accept keys the library itself takes, typed by its default.
    head = rest.split(".")[0]
    for prefix in shortcuts[1:]:
        defaults = _library_defaults(section, prefix, spec)
        if head in defaults:
            node = _parent(spec, (prefix + rest).split("."), create=True)
            node[name] = _check_type(key, defaults[head], value) if head == name else value
            return f"{section}.{prefix}{rest}"
    raise UserError(f"--set {key}: no such setting in the {section} spec '{spec['name']}'; see `neurorl {section}s --json`")


# ----------------------------------------------------------------------------- config


def resolve(
    task: TaskSpec,
    model: ModelSpec,
    overrides: list[str] | None = None,
    steps: int | None = None,
    checkpoint_every: int | None = None,
    trials: int | None = None,
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
        for key, value in specs["task"].get("model_defaults", {}).get(model.name, {}).items():
            apply_override(specs, f"model.{key}", value)
        written = {apply_override(specs, key, value): (key, value) for key, value in combo}
        for section, adapter in (("task", _task_adapter()), ("model", _model_adapter())):
            try:  # re-validate: an override must leave a valid spec
                adapter.validate_python(specs[section])
            except ValidationError as exc:
                field, message = first_error(exc, specs[section])
                raise UserError(_override_error(f"{section}.{field}", message, written)) from exc
        budget = _budget(specs["task"]["budget"], {"steps": steps, "trials": trials}, checkpoint_every)
        config = {"task": specs["task"], "model": specs["model"], "budget": budget}
        config["overrides"] = {k: v for k, v in combo}
        configs.append(config)
    return configs


def _override_error(path: str, message: str, written: dict[str, tuple[str, Any]]) -> str:
    """Name the setting as the user wrote it when the error is in one they set. A nested schema's
    error gives a path relative to its table (`n_steps` for model.hyper.n_steps)."""
    section, _, field = path.partition(".")
    mine = [where for where in written if where.startswith(section + ".")]
    if field == "(top)" and len(mine) == 1:  # a check across the spec's settings, after one change
        key, value = written[mine[0]]
        return f"--set {key}={json.dumps(value)}: {message}"
    for where, (key, value) in written.items():
        if path == where or path.startswith(where + ".") or (where.startswith(section + ".") and where.endswith("." + field)):
            return f"--set {key}={json.dumps(value)}: {message}"
    return f"--set: {path}: {message}"


def _budget(spec: dict, asked: dict[str, int | None], checkpoint_every: int | None) -> dict:
    """The run's budget in one unit the task accepts: `{unit: total, "checkpoint_every": n}`."""
    given = [unit for unit, value in asked.items() if value is not None]
    if len(given) > 1:
        raise UserError("give --steps or --trials, not both")
    units = spec["units"]
    unit = given[0] if given else units[0]
    if unit not in units:
        raise UserError(f"this task's budget counts {' or '.join(units)}: use --{units[0]}")
    total = asked[unit] if given else spec[unit]
    every = checkpoint_every if checkpoint_every is not None else spec["checkpoint_every"]
    if total <= 0 or every <= 0:
        raise UserError(f"--{unit} and --checkpoint-every must be positive")
    return {unit: total, "checkpoint_every": min(every, total)}


def experiment_hash(config: dict) -> str:
    return config_hash({k: config[k] for k in ("task", "model", "budget")})


def run_hash(config: dict, seed: int) -> str:
    return config_hash({"experiment": experiment_hash(config), "seed": seed})


def task_environment(task: dict) -> dict:
    """What a task's trials come from (its family says): part of an evaluation's identity."""
    return plugins.family_of(task).environment(task)


def in_protocol_order(task: dict, names) -> list[str]:
    """Protocol names in the order the task lists them (the first selects `best` checkpoints);
    names the task does not list come after, by name."""
    order = list(task.get("protocols", {}))
    return sorted(names, key=lambda p: (order.index(p) if p in order else len(order), p))


def protocol_hash(env: dict, protocol: dict) -> str:
    """Identity of an evaluation: the protocol (trials, seed, kwargs) and the environment."""
    return config_hash({"protocol": protocol, "env": env})


def parse_seeds(text: str) -> list[int]:
    """`0-4`, `3`, `0,2,5` or a mix."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise UserError(f"--seeds {text}: seeds are whole numbers from 0, written as 0-4, 3 or 0,2,5")
        if dash and int(hi) < int(lo):
            raise UserError(f"--seeds {text}: the range {part.strip()} runs backwards; write {hi}-{lo}")
        seeds.extend(range(int(lo), int(hi) + 1) if dash else [int(lo)])
    return sorted(set(seeds))


def pair_problem(config: dict) -> str | None:
    """Why a task/model pair does not fit, or None when it does: the engine judges what the task's
    family offers (observations, actions, environments, features), never their names."""
    task, model = config["task"], config["model"]
    offer = plugins.family_of(task).offer(task)
    return offer.problem or plugins.engine_of(model).problem(model, task, offer)


def check_pair(config: dict) -> None:
    """Refuse a task/model pair that does not fit, before anything is stored."""
    problem = pair_problem(config)
    if problem:
        raise UserError(problem)
