"""The configs whose identity (experiment hash and frozen config) must never change.

`python -m tests.identity_cases` writes tests/fixtures/identity.json; it was written by the code
before task families and engines became plug-ins, and tests/test_identity.py checks that the
code of today resolves every case to the same config and hash.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "identity.json"

# A user's own specs, written to $NEURORL_HOME: a model left without `families` (it took the
# engine's default) and a task left without `family` (it took neurogym).
USER_MODEL = """engine = "sb3"
algo = "PPO"
policy = "MlpPolicy"
actions = ["discrete"]
[hyper]
n_steps = 64
"""
USER_TASK = """env = { id = "GoNogo-v0", kwargs = { dt = 100 } }
[budget]
steps = 5000
checkpoint_every = 1000
"""

# (task, model, overrides, budget keywords) beyond the catalog's pairs at their defaults
EXTRA = [
    ("perceptual-decision-making", "recurrent-ppo", ["model.learning_rate=1e-3"], {}),
    ("perceptual-decision-making", "recurrent-ppo", ["task.dt=50"], {}),  # a key only the library lists
    ("perceptual-decision-making", "recurrent-ppo", ["model.n_steps=64,128"], {}),  # a grid: two configs
    ("perceptual-decision-making", "ppo", ["model.net_arch=[32,32]"], {"steps": 1000, "checkpoint_every": 500}),
    ("harlow", "meta-a2c-lstm", ["task.train_objects=50"], {"trials": 600}),  # and the task's model_defaults
    ("two-step", "meta-a2c-lstm", [], {}),
    ("firefly", "td3-modular", ["model.actor=Actor2"], {}),
    ("conditioning-fixed", "distributional-td", ["model.predictors=20"], {}),
    ("doom-basic", "retinal-simple", ["model.global_channels=8"], {}),
    ("doom-basic", "retinal-recurrent-ppo", ["model.global_channels=8"], {}),
    ("neurogym:GoNogo-v0", "ppo", [], {}),
    ("neurogym:ReadySetGo-v0", "recurrent-ppo", ["task.dt=20"], {}),
    ("user-task", "user-model", [], {}),
    ("perceptual-decision-making", "user-model", [], {}),
]


def write_user_specs(home: Path) -> None:
    (home / "models").mkdir(parents=True, exist_ok=True)
    (home / "tasks").mkdir(parents=True, exist_ok=True)
    (home / "models" / "user-model.toml").write_text(USER_MODEL)
    (home / "tasks" / "user-task.toml").write_text(USER_TASK)


def cases(home: Path) -> dict[str, dict]:
    """Every case: id -> {hash, config}, computed by the code imported now."""
    from neurorl_cli import catalog
    from neurorl_cli.home import Home

    write_user_specs(home)
    h = Home(home, home / "runs", "test")
    out: dict[str, dict] = {}
    tasks = [t for t in catalog.task_names(h) if not t.startswith("user")]
    models = [m for m in catalog.model_names(h) if not m.startswith("user")]
    for task in tasks:
        for model in models:
            (config,) = catalog.resolve(catalog.load_task(task, h), catalog.load_model(model, h))
            if catalog.pair_problem(config) is None:
                out[f"{task} x {model}"] = {"hash": catalog.experiment_hash(config), "config": config}
    for task, model, overrides, budget in EXTRA:
        configs = catalog.resolve(catalog.load_task(task, h), catalog.load_model(model, h), overrides, **budget)
        for i, config in enumerate(configs):
            out[f"{task} x {model} {' '.join(overrides)} {budget} #{i}"] = {"hash": catalog.experiment_hash(config), "config": config}
    return out


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        found = cases(Path(tmp))
    FIXTURE.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    print(f"{len(found)} cases -> {FIXTURE}", file=sys.stderr)
