"""Seed groups: several seeds of one experiment trained in one worker process, each its own run.

The engines' own equality tests (a seed in a group against the same seed alone) are in
test_seed_groups_td3.py and test_seed_groups_meta_a2c.py; here: the worker, the launcher, the
registry and resume, through distributional TD (whose seeds simulate as one batched computation).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

from .conftest import REPO, cli
from neurorl_cli.interfaces import RunConfig
from neurorl_cli.runlog import EVENTS, write_run_file
from neurorl_cli.worker import run_worker

TD = ["conditioning-variable", "distributional-td", "--set", "model.predictors=4"]


def _config(trials: int, every: int) -> dict:
    task = tomllib.loads((REPO / "tasks/conditioning-variable.toml").read_text())
    model = tomllib.loads((REPO / "models/distributional-td.toml").read_text())
    model["hyper"]["predictors"] = 6
    return {"task": task, "model": model, "budget": {"trials": trials, "checkpoint_every": every}}


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / EVENTS).read_text().splitlines()]


def test_a_group_trains_each_seed_as_alone(tmp_path):
    config = _config(trials=60, every=20)

    def run_file(name: str, seed: int, run_id: int, group=None) -> Path:
        run_dir = tmp_path / name
        write_run_file(run_dir, RunConfig(run_id=run_id, seed=seed, attempt=1, config=config, run_dir=str(run_dir),
                                          device="cpu", threads=1, group=group).to_json())
        return run_dir

    alone = [run_file(f"alone{seed}", seed, seed + 1) for seed in (3, 4, 5)]
    for run_dir in alone:
        assert run_worker(run_dir) == 0
    grouped = [run_file(f"grouped{seed}", seed, seed + 11, group=[14, 15, 16]) for seed in (3, 4, 5)]
    assert run_worker(*grouped) == 0
    for a, g in zip(alone, grouped):
        with np.load(a / "simulation.npz") as x, np.load(g / "simulation.npz") as y:
            for key in x.files:
                np.testing.assert_allclose(x[key], y[key], rtol=1e-6, atol=1e-9, err_msg=key)
        events = _events(g)
        assert events[0]["versions"]["seed_group"] == [14, 15, 16]  # provenance: trained as a group
        assert [e["status"] for e in events if e["type"] == "status"] == ["running", "completed"]
        assert [e["step"] for e in events if e["type"] == "checkpoint"] == [20, 40, 60]
    with np.load(alone[0] / "simulation.npz") as x, np.load(alone[1] / "simulation.npz") as y:
        assert not np.allclose(x["V"], y["V"])  # the seeds differ: nothing was shared by mistake


def test_the_cli_groups_seeds_per_worker_and_runs_show_says_so(neurorl_home):
    cli("train", *TD, "--seeds", "0-2", "--trials", "400", "--checkpoint-every", "200",
        "--seeds-per-worker", "2", "--jobs", "2", check=True)
    shown = cli("runs", "show", "r1", check=True).stdout
    assert "trained in one process with 1 other seed(s) of its experiment: r1, r2" in shown
    assert "trained in one process" not in cli("runs", "show", "r3", check=True).stdout  # a group of one is no group
    listed = json.loads(cli("runs", "list", "--json", check=True).stdout)
    assert [r["status"] for r in listed] == ["completed"] * 3


def test_a_stopped_group_resumes_together(neurorl_home):
    TRIALS = 30_000
    # Long enough to be stopped at a checkpoint; each seed then resumes from its own.
    # (Not much longer: the simulation file keeps every trial's values.)
    proc = subprocess.Popen([sys.executable, "-m", "neurorl_cli", "train", *TD, "--seeds", "0-1",
                             "--trials", str(TRIALS), "--checkpoint-every", "300"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = neurorl_home / "runs"
    deadline = time.time() + 120
    while time.time() < deadline:
        logs = list(runs.glob("*/events.jsonl")) if runs.is_dir() else []
        if len(logs) == 2 and all('"type":"checkpoint"' in p.read_text() for p in logs):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    listed = json.loads(cli("runs", "list", "--json", check=True).stdout)
    assert [r["status"] for r in listed] == ["cancelled", "cancelled"], err
    stopped_at = {r["id"]: r["steps"] for r in listed}

    resumed = cli("train", "--resume", "e1", "--jobs", "1", timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    listed = json.loads(cli("runs", "list", "--json", check=True).stdout)
    assert [(r["status"], r["attempt"], r["steps"]) for r in listed] == [("completed", 2, TRIALS)] * 2
    for r in listed:
        assert 0 < stopped_at[r["id"]] < TRIALS
        first = next(e for e in _events(neurorl_home / "runs" / Path(r["run_dir"]).name) if e.get("attempt") == 2)
        assert first["type"] == "status" and first["status"] == "running"

    nothing = cli("train", "--resume", "e1")
    assert nothing.returncode == 2 and "no crashed, failed or cancelled run to resume" in nothing.stderr


def test_td3_groups_on_request_only_on_a_cpu(neurorl_home):
    # On a CPU a batched TD3 update costs more per seed than a solo one (td3_group.py), so its
    # seeds train one per process unless --seeds-per-worker asks for groups.
    tiny = ["--set", "model.warmup_trials=25", "--set", "model.phase2_rewarded=0", "--set", "model.replay_period=200",
            "--set", "model.trials_per_batch=25", "--set", "model.validation_trials=20"]
    from neurorl_cli import catalog
    from neurorl_cli.plugins import engine_of

    (config,) = catalog.resolve(catalog.load_task("firefly"), catalog.load_model("td3-modular"), [], trials=25)
    assert [engine_of(config).group_size(config, device, None) for device in ("cpu", "cuda")] == [1, 64]
    assert engine_of(config).group_size(config, "cpu", 2) == 2
    cli("train", "firefly", "td3-modular", *tiny, "--seeds", "2-3", "--trials", "25", "--device", "cpu",
        "--seeds-per-worker", "2", check=True)
    assert "trained in one process with 1 other seed(s) of its experiment: r1, r2" in cli("runs", "show", "r2", check=True).stdout


def test_a_group_the_model_cannot_batch_trains_seed_after_seed(tmp_path):
    # meta-a2c-lstm on a NeuroGym task: its lockstep envs have no per-seed streams (NotOffered),
    # so the worker trains the seeds one after another, each run as alone.
    from neurorl_cli import catalog

    (config,) = catalog.resolve(catalog.load_task("perceptual-decision-making"), catalog.load_model("meta-a2c-lstm"),
                                ["model.hidden_size=16", "model.episodes_per_update=4"], steps=400, checkpoint_every=400)
    dirs = []
    for seed in (0, 1):
        run_dir = tmp_path / f"s{seed}"
        write_run_file(run_dir, RunConfig(run_id=seed + 1, seed=seed, attempt=1, config=config, run_dir=str(run_dir),
                                          device="cpu", threads=1, group=[1, 2]).to_json())
        dirs.append(run_dir)
    assert run_worker(*dirs) == 0
    for run_dir in dirs:
        events = _events(run_dir)
        assert [e["status"] for e in events if e["type"] == "status"] == ["running", "completed"]
        assert any(e["type"] == "checkpoint" for e in events)
