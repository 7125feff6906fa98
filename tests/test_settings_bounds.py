"""Bad settings fail at `train`, before anything is stored, naming the setting and its bound.

Every numeric field of every settings schema (task families, engines, and the tables handed to
a library) is tried with 0, -1, nan and inf. The schemas are found from the catalog's unions and
each engine's and family's own listing, so a new field or engine is walked without a test edit.
"""

from __future__ import annotations

import math
import sqlite3
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from pydantic import BaseModel, ValidationError

from neurorl_cli import catalog, plugins
from neurorl_cli.engines.native.engine import NativeModel, native_hyper
from neurorl_cli.engines.sample_factory.engine import SampleFactoryHyper
from neurorl_cli.engines.sb3.engine import SB3_HYPER, SB3Model, SB3PolicyKwargs
from neurorl_cli.families.metarl.spec import MetaRLTask
from neurorl_cli.families.neurogym.spec import NeuroGymKwargs
from neurorl_cli.nets.retinal import EncoderSettings
from neurorl_cli.envs import batched
from neurorl_cli.families.metarl import envs as metarl_envs
from neurorl_cli.families.conditioning import schedule as conditioning
from neurorl_cli.families.firefly.env import Firefly
from neurorl_cli.errors import UserError

from .conftest import cli

BAD = {"0": 0, "-1": -1, "nan": math.nan, "inf": math.inf}


def _members(annotation) -> list:
    """The types an annotation admits, through Annotated, unions and Optional."""
    if get_origin(annotation) is typing.Annotated:
        return _members(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [t for arg in get_args(annotation) for t in _members(arg)]
    return [annotation]


def _models_in(annotation) -> list[type[BaseModel]]:
    found = []
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            found.append(member)
        for arg in get_args(member) if get_origin(member) in (list, dict) else ():
            found += _models_in(arg)
    return found


def _shape(annotation) -> str | None:
    """'scalar', 'list' or 'dict' for a field that holds numbers; None for any other field."""
    for member in _members(annotation):
        if member in (int, float):
            return "scalar"
        origin = get_origin(member)
        if origin in (list, dict) and any(m in (int, float) for m in _members(get_args(member)[-1])):
            return "list" if origin is list else "dict"
    return None


def _literal_args(model: type[BaseModel], field: str) -> tuple:
    (literal,) = [m for m in _members(model.model_fields[field].annotation) if get_origin(m) is Literal]
    return get_args(literal)


def roots() -> dict[str, type[BaseModel]]:
    """Every settings schema: the spec of each task family and engine, and the schema of each
    table a spec hands on as a free dict (a native trainer's hyper, an environment's settings)."""
    out = {}
    specs = [f.task_spec for f in plugins.families().values()] + [e.model_spec for e in plugins.engines().values()]
    for spec in specs:
        out[spec.__name__] = spec
    for algo in _literal_args(NativeModel, "algo"):
        out[f"native {algo} hyper"] = native_hyper(algo)
    for algo in _literal_args(SB3Model, "algo"):
        out[f"sb3 {algo} hyper"] = SB3_HYPER[algo]
    out["sb3 policy_kwargs"] = SB3PolicyKwargs
    out["sb3 encoder"] = EncoderSettings
    out["sample-factory hyper"] = SampleFactoryHyper
    out["neurogym env.kwargs"] = NeuroGymKwargs
    for kind in _literal_args(MetaRLTask, "kind"):
        out[f"meta-rl {kind} env"] = batched.settings_schema(metarl_envs.env_class(kind))
    out["firefly env"] = batched.settings_schema(Firefly)
    out["conditioning schedule"] = conditioning.Schedule
    return out


def all_schemas() -> dict[type[BaseModel], str]:
    """The roots and every model nested in their fields."""
    seen: dict[type[BaseModel], str] = {}
    todo = [(model, name) for name, model in roots().items()]
    while todo:
        model, name = todo.pop()
        if model in seen:
            continue
        seen[model] = name
        for field, info in model.model_fields.items():
            todo += [(nested, f"{name}.{field}") for nested in _models_in(info.annotation)]
    return seen


# Each table a spec holds as a free dict, and the schema (or check) that bounds what is in it.
FREE_TABLES = {
    ("EnvSpec", "kwargs"): "NeuroGymKwargs, then the environment is built and stepped (envs/neurogym_env.spaces)",
    ("WrapperSpec", "kwargs"): "the wrapped environment is built and stepped (envs/neurogym_env.spaces)",
    ("Protocol", "kwargs"): "the environment's settings schema (specs.check_protocols)",
    ("DoomProtocol", "kwargs"): "DoomTask's own fields (frame_skip, shape_reward) and the scenario check",
    ("NeuroGymTask", "model_defaults"): "applied as --set on the model, then its schema",
    ("ConditioningTask", "model_defaults"): "applied as --set on the model, then its schema",
    ("MetaRLTask", "model_defaults"): "applied as --set on the model, then its schema",
    ("FireflyTask", "model_defaults"): "applied as --set on the model, then its schema",
    ("DoomTask", "model_defaults"): "applied as --set on the model, then its schema",
    ("ConditioningTask", "schedule"): "conditioning.Schedule",
    ("MetaRLTask", "env"): "batched.settings_schema of the kind's class",
    ("FireflyTask", "env"): "batched.settings_schema(Firefly)",
    ("SB3Model", "hyper"): "SB3_HYPER[algo], then the library's model is built",
    ("SB3Model", "policy_kwargs"): "SB3PolicyKwargs, then the library's model is built",
    ("SB3Model", "encoder"): "EncoderSettings and nets/retinal.encoder_settings",
    ("NativeModel", "hyper"): "native_hyper(algo)",
    ("SampleFactoryModel", "hyper"): "SampleFactoryHyper",
}


def _is_free_dict(annotation) -> bool:
    for member in _members(annotation):
        if get_origin(member) is dict and Any in [a for arg in get_args(member) for a in [arg, *get_args(arg)]]:
            return True
    return False


def test_every_free_table_has_a_schema():
    """A spec field that holds settings as a free dict is bounded somewhere: a new one fails here
    until it is given a schema and listed above (and in roots() when it is a pydantic schema)."""
    free = {(model.__name__, field) for model in all_schemas() for field, info in model.model_fields.items()
            if _is_free_dict(info.annotation)}
    assert free == set(FREE_TABLES)


def _examples() -> dict[type[BaseModel], dict]:
    """A valid input of each schema, from the shipped catalog (its tasks, models and their tables)."""
    found: dict[type[BaseModel], dict] = {}

    def collect(obj: Any, data: Any) -> None:
        if isinstance(obj, BaseModel):
            found.setdefault(type(obj), data)
            for field, info in type(obj).model_fields.items():
                key = info.alias or field
                if isinstance(data, dict) and key in data:
                    collect(getattr(obj, field), data[key])
        elif isinstance(obj, list) and isinstance(data, list):
            for item, raw in zip(obj, data):
                collect(item, raw)
        elif isinstance(obj, dict) and isinstance(data, dict):
            for key in obj:
                collect(obj[key], data.get(key))

    def add(schema: type[BaseModel], data: dict) -> None:
        collect(schema.model_validate(data), data)

    specs = [catalog.load_task(n) for n in catalog.task_names()] + [catalog.load_model(n) for n in catalog.model_names()]
    for spec in specs:
        data = spec.model_dump(by_alias=True, exclude_unset=True)
        add(type(spec), data)
        if data.get("family") == "neurogym":
            add(NeuroGymKwargs, data["env"].get("kwargs", {}))
        if data.get("family") == "meta-rl":
            add(batched.settings_schema(metarl_envs.env_class(data["kind"])), data.get("env", {}))
        if data.get("family") == "firefly":
            add(batched.settings_schema(Firefly), data.get("env", {}))
        if data.get("family") == "conditioning":
            add(conditioning.Schedule, data["schedule"])
        if data.get("engine") == "native":
            add(native_hyper(data["algo"]), data.get("hyper", {}))
        if data.get("engine") == "sample-factory":
            add(SampleFactoryHyper, data.get("hyper", {}))
        if data.get("engine") == "sb3":
            add(SB3_HYPER[data["algo"]], data.get("hyper", {}))
            add(SB3PolicyKwargs, data.get("policy_kwargs", {}))
            if data.get("encoder"):
                add(EncoderSettings, {k: v for k, v in data["encoder"].items() if k != "name"})
    return found


def _numeric_fields():
    schemas = all_schemas()
    for model, where in schemas.items():
        for field, info in model.model_fields.items():
            shape = _shape(info.annotation)
            if shape:
                yield pytest.param(model, field, info.alias or field, shape, id=f"{where}.{field}")


@pytest.fixture(scope="module")
def examples():
    return _examples()


def _with(base: dict, key: str, shape: str, value: float) -> dict:
    current = base.get(key)
    if shape == "list":
        value = [value] * max(1, len(current) if isinstance(current, list) else 1)
    elif shape == "dict":
        value = {k: value for k in (current if isinstance(current, dict) and current else {"x": None})}
    return {**base, key: value}


def _names(exc: Exception, names: set[str]) -> bool:
    if isinstance(exc, ValidationError):
        return any(names & {str(part) for part in error["loc"]} or any(n in error["msg"] for n in names)
                   for error in exc.errors())
    return any(n in str(exc) for n in names)


@pytest.mark.parametrize("model, field, key, shape", list(_numeric_fields()))
def test_numeric_field_is_bounded(examples, model, field, key, shape):
    assert model in examples, f"{model.__name__}: no example in the shipped catalog to start from"
    rejected = {}
    for label, value in BAD.items():
        try:
            model.model_validate(_with(examples[model], key, shape, value))
        except (ValidationError, ValueError, UserError) as exc:
            assert _names(exc, {field, key}), f"{label} rejected without naming {key}: {exc}"
            rejected[label] = exc
    assert {"-1", "nan", "inf"} & set(rejected), f"{key}: accepts -1, nan and inf alike; give it bounds"
    assert {"nan", "inf"} <= set(rejected), f"{key}: accepts nan or inf"


# ----------------------------------------------------------------------------- the CLI


def _rows(home) -> tuple[int, int]:
    db = home / "registry.db"
    if not db.exists():
        return 0, 0
    with sqlite3.connect(db) as conn:
        return (conn.execute("SELECT count(*) FROM experiment").fetchone()[0],
                conn.execute("SELECT count(*) FROM run").fetchone()[0])


@pytest.mark.parametrize("setting, bound", [
    ("model.learning_rate=-1", "greater than 0"),
    ("model.n_steps=0", "greater than 0"),
    ("model.lstm_hidden_size=0", "greater than 0"),
    ("task.dt=0", "greater than 0"),
    ("model.gamma=NaN", "finite"),
])
def test_bad_setting_fails_before_anything_is_stored(neurorl_home, setting, bound):
    proc = cli("train", "perceptual-decision-making", "recurrent-ppo", "--steps", "64", "--set", setting)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"--set {setting.split('=')[0]}=" in lines[0] and bound in lines[0]
    assert _rows(neurorl_home) == (0, 0)


def test_settings_the_library_refuses_fail_before_anything_is_stored(neurorl_home):
    """No schema knows this key; sb3 refuses it when its model is built, in the CLI, not the worker."""
    spec = neurorl_home.parent / "odd-ppo.toml"
    spec.write_text('engine = "sb3"\nalgo = "PPO"\npolicy = "MlpPolicy"\nactions = ["discrete"]\n'
                    '[hyper]\nn_steps = 64\nbatch_size = 64\nno_such_setting = 3\n')
    proc = cli("train", "perceptual-decision-making", str(spec), "--steps", "64")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "PPO refuses" in proc.stderr and "no_such_setting" in proc.stderr
    assert _rows(neurorl_home) == (0, 0)


BREAKS = '''
import gymnasium as gym
import numpy as np


class BreaksLater(gym.Env):
    """Fine when built and stepped once; breaks on its 40th step, as a user's code might."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self):
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.steps += 1
        if self.steps >= 40:
            raise RuntimeError("sensor array unplugged at step 40")
        return np.zeros(2, np.float32), 0.0, False, False, {"new_trial": True, "performance": 1.0}
'''


def test_a_worker_failure_shows_its_error(neurorl_home, tmp_path, monkeypatch):
    (tmp_path / "breaks_later.py").write_text(BREAKS)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    task = tmp_path / "breaks.toml"
    task.write_text('[env]\nentry_point = "breaks_later:BreaksLater"\n[budget]\nsteps = 128\ncheckpoint_every = 128\n')
    proc = cli("train", str(task), "ppo", "--set", "model.n_steps=32", "--set", "model.batch_size=32")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    last = " ".join(proc.stderr[proc.stderr.rindex("failed: "):].split())  # the closing line, however wrapped
    assert last.startswith("failed: run r1: RuntimeError: sensor array unplugged at step 40 (traceback in "), proc.stderr
    assert last.endswith("worker.log)")
