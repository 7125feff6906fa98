"""The catalog: specs validate, overrides are type-checked, identity hashes are stable."""

from __future__ import annotations

import pytest

from neurorl_cli import catalog
from neurorl_cli.errors import UserError


def test_every_shipped_spec_loads_and_every_pair_fits():
    tasks = catalog.task_names()
    assert {"perceptual-decision-making", "go-no-go", "delay-match-sample", "context-decision-making", "harlow", "two-step"} <= set(tasks)
    models = catalog.model_names()
    assert {"recurrent-ppo", "ppo", "a2c", "meta-a2c-lstm", "distributional-td"} <= set(models)
    fits = {  # task family -> the models that train on it (by what its tasks offer, not by name)
        "neurogym": {"recurrent-ppo", "ppo", "a2c", "meta-a2c-lstm"},
        "meta-rl": {"recurrent-ppo", "ppo", "a2c", "meta-a2c-lstm"},
        "conditioning": {"distributional-td", "distributional-td-diverse"},
        "firefly": {"td3-modular", "td3-holistic", "ekf-td3", "holistic-ekf"},
        "doom": {"retinal-simple", "retinal-lindsey", "retinal-recurrent-ppo"},
    }
    for name in tasks:
        task = catalog.load_task(name)
        for model in models:
            (config,) = catalog.resolve(task, catalog.load_model(model))
            if model in fits[task.family]:
                catalog.check_pair(config)
            else:
                with pytest.raises(UserError, match=f"{task.name}.*choose another model|choose a model with an image encoder"):
                    catalog.check_pair(config)


def test_fields_added_later_keep_stored_hashes():
    """Configs stored before `model_defaults`, `actions` and Protocol.actions existed hash the same."""
    (config,) = catalog.resolve(catalog.load_task("conditioning-fixed"), catalog.load_model("distributional-td"))
    assert "model_defaults" not in config["task"] and "actions" not in config["model"]
    assert "actions" not in config["task"]["protocols"]["default"]
    (config,) = catalog.resolve(catalog.load_task("two-step"), catalog.load_model("meta-a2c-lstm"))
    assert config["task"]["protocols"]["test"]["actions"] == "sampled"
    assert config["model"]["actions"] == ["discrete"]


def test_tutorial_settings():
    task = catalog.load_task("perceptual-decision-making")
    assert task.env.id == "PerceptualDecisionMaking-v0"
    assert task.env.kwargs == {"dt": 100, "timing": {"fixation": 300, "stimulus": 500, "decision": 300}}
    assert [w.name for w in task.env.wrappers] == ["PassReward"]
    assert task.protocols["default"].select == "fraction_correct"


def test_unknown_names_suggest_the_closest():
    with pytest.raises(UserError, match="Did you mean perceptual-decision-making"):
        catalog.load_task("perceptual-decison-making")
    with pytest.raises(UserError, match="recurrent-ppo"):
        catalog.load_model("recurent-ppo")
    with pytest.raises(UserError, match="DelayMatchSample-v0"):
        catalog.load_task("neurogym:DelayMatchSampel-v0")


def test_any_neurogym_id_makes_a_task():
    task = catalog.load_task("neurogym:DelayMatchSample-v0")
    assert task.env.id == "DelayMatchSample-v0" and task.env.kwargs == {}


def test_bad_spec_file_names_file_and_field(tmp_path):
    bad = tmp_path / "mine.toml"
    bad.write_text('[env]\nid = "GoNogo-v0"\ntrials_per_episode = -3\n[budget]\nsteps = 10\ncheckpoint_every = 5\n')
    with pytest.raises(UserError, match=r"mine.toml: field 'env.trials_per_episode'"):
        catalog.load_task(str(bad))


def test_user_entry_point_task(tmp_path):
    spec = tmp_path / "mine.toml"
    spec.write_text(
        '[env]\nentry_point = "neurogym.envs.gonogo:GoNogo"\n[env.kwargs]\ndt = 50\n'
        '[budget]\nsteps = 100\ncheckpoint_every = 50\n'
    )
    (config,) = catalog.resolve(catalog.load_task(str(spec)), catalog.load_model("a2c"))
    catalog.check_pair(config)
    assert config["task"]["env"]["kwargs"]["dt"] == 50


def test_overrides_are_type_checked():
    task, model = catalog.load_task("perceptual-decision-making"), catalog.load_model("recurrent-ppo")
    (config,) = catalog.resolve(task, model, ["model.learning_rate=1e-3", "model.lstm_hidden_size=64", "task.dt=50"])
    assert config["model"]["hyper"]["learning_rate"] == 1e-3
    assert config["model"]["policy_kwargs"]["lstm_hidden_size"] == 64
    assert config["task"]["env"]["kwargs"]["dt"] == 50
    (config,) = catalog.resolve(task, model, ["model.target_kl=0.02"])  # a library keyword not in the spec
    assert config["model"]["hyper"]["target_kl"] == 0.02
    for bad, message in [
        ("model.learning_rate=fast", "expected float"),
        ("model.n_steps=1.5", "expected int"),
        ("model.no_such_thing=1", "no such setting"),
        ("learning_rate=1", "start with 'task.' or 'model.'"),
        ("model.n_steps", "section.key=value"),
    ]:
        with pytest.raises(UserError, match=message):
            catalog.resolve(task, model, [bad])


def test_settings_whose_default_is_made_by_a_factory_take_overrides():
    # td3's per-phase exploration levels default to a list built by a factory: an override is typed
    # by the list it makes (a scalar is refused in one line, not a crash in the error message).
    task, model = catalog.load_task("firefly"), catalog.load_model("td3-modular")
    (config,) = catalog.resolve(task, model, ["model.exploration=[0.8]"])
    assert config["model"]["hyper"]["exploration"] == [0.8]
    with pytest.raises(UserError, match=r"expected list like \[0.8, 0.5, 0.4\]"):
        catalog.resolve(task, model, ["model.exploration=0.8"])


def test_grid_and_list_values():
    task, model = catalog.load_task("perceptual-decision-making"), catalog.load_model("ppo")
    configs = catalog.resolve(task, model, ["model.n_steps=64,128", "model.net_arch=[32,32]"])
    assert [c["model"]["hyper"]["n_steps"] for c in configs] == [64, 128]
    assert all(c["model"]["policy_kwargs"]["net_arch"] == [32, 32] for c in configs)


def test_identity_hash():
    task, model = catalog.load_task("perceptual-decision-making"), catalog.load_model("recurrent-ppo")
    (a,) = catalog.resolve(task, model, steps=1000)
    (b,) = catalog.resolve(task, model, steps=1000)
    (c,) = catalog.resolve(task, model, steps=2000)
    assert catalog.experiment_hash(a) == catalog.experiment_hash(b) != catalog.experiment_hash(c)
    assert catalog.run_hash(a, 0) != catalog.run_hash(a, 1)
    described = task.model_copy(update={"description": "words only"})
    (d,) = catalog.resolve(described, model, steps=1000)
    assert catalog.experiment_hash(d) == catalog.experiment_hash(a)


def test_unfit_pair_is_refused(tmp_path):
    spec = tmp_path / "box-only.toml"
    spec.write_text(
        'engine = "sb3"\nalgo = "PPO"\npolicy = "MlpPolicy"\nactions = ["box"]\n'
    )
    (config,) = catalog.resolve(catalog.load_task("go-no-go"), catalog.load_model(str(spec)))
    with pytest.raises(UserError, match="needs discrete"):
        catalog.check_pair(config)


def test_seeds_parse():
    assert catalog.parse_seeds("0-2") == [0, 1, 2]
    assert catalog.parse_seeds("5,1-2") == [1, 2, 5]
    with pytest.raises(UserError):
        catalog.parse_seeds("a-b")


def test_tasks_and_models_listings():
    import json

    from .conftest import cli

    tasks = json.loads(cli("tasks", "--json", check=True).stdout)
    pdm = next(t for t in tasks if t["name"] == "perceptual-decision-making")
    assert set(pdm["models"]) >= {"recurrent-ppo", "ppo", "a2c"} and pdm["budget"] == {"steps": 100_000}
    models = json.loads(cli("models", "--json", check=True).stdout)
    assert next(m for m in models if m["name"] == "recurrent-ppo")["policy"] == "MlpLstmPolicy"


def test_pair_check_caches_spaces_of_registered_ids(tmp_path):
    (config,) = catalog.resolve(catalog.load_task("go-no-go"), catalog.load_model("ppo"))
    catalog.check_pair(config)
    cache = tmp_path / "cache" / "neurorl" / "spaces.json"
    import json

    (entry,) = json.loads(cache.read_text()).values()
    assert entry[:2] == ["vector", "discrete"]
    catalog.check_pair(config)  # answered from the cache
