"""Seeds are real: the same seed gives the same trials and metrics, another seed others."""

from __future__ import annotations

import json

import numpy as np

from neurorl_cli import catalog
from neurorl_cli.interfaces import RunConfig
from neurorl_cli.families.neurogym.envs import make_env
from neurorl_cli.runlog import EVENTS, write_run_file
from neurorl_cli.worker import run_worker


def _trials(env_spec, seed, n_steps=300):
    env = make_env(env_spec, seed=seed)
    env.reset()
    env.action_space.seed(0)
    conditions = []
    for _ in range(n_steps):
        _, _, _, truncated, info = env.step(1)
        if info.get("new_trial"):
            conditions.append((info["trial"]["ground_truth"], info["trial"]["coh"]))
        if truncated:
            env.reset()
    return conditions


def test_same_seed_same_trials_other_seed_other_trials():
    spec = catalog.load_task("perceptual-decision-making").env.model_dump()
    assert _trials(spec, 3) == _trials(spec, 3)
    assert _trials(spec, 3) != _trials(spec, 4)


def test_reset_with_a_seed_reseeds_the_task():
    spec = catalog.load_task("perceptual-decision-making").env.model_dump()
    env = make_env(spec)
    first = []
    for _ in range(2):
        env.reset(seed=11)
        obs = [env.step(0)[0] for _ in range(40)]
        first.append(np.stack(obs))
    assert np.array_equal(first[0], first[1])


def _train(tmp_path, name, seed):
    (config,) = catalog.resolve(
        catalog.load_task("perceptual-decision-making"), catalog.load_model("recurrent-ppo"),
        ["model.n_steps=64", "model.batch_size=64", "model.lstm_hidden_size=16", "model.n_epochs=2"],
        steps=256, checkpoint_every=256,
    )
    run_dir = tmp_path / name
    write_run_file(run_dir, RunConfig(run_id=1, seed=seed, attempt=1, config=config, run_dir=str(run_dir), threads=1).to_json())
    assert run_worker(run_dir) == 0
    values = []
    for line in (run_dir / EVENTS).read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "metric":
            values.append({k: v for k, v in event["values"].items() if k != "train/steps_per_s"})
    return values


def test_same_seed_same_training_metrics(tmp_path):
    a, b, c = _train(tmp_path, "a", 5), _train(tmp_path, "b", 5), _train(tmp_path, "c", 6)
    assert a and a == b
    assert a != c
