"""Safety: checkpoints are read without running code, `--resume` starts only from a checkpoint
whose file matches the registry, and Slurm settings cannot add lines to the job script."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
import torch

from neurorl_cli.atomic import sha256
from neurorl_cli.engines.base import UnreadableCheckpoint, load_checkpoint
from neurorl_cli.engines.native.meta_a2c import Hyper as MetaHyper
from neurorl_cli.engines.native.meta_a2c import MetaA2CBackend
from neurorl_cli.engines.native.td3 import TD3, load_nets
from neurorl_cli.engines.native.td3 import Hyper as TD3Hyper

from .conftest import cli

# Two checkpoints (1600 and 3200 trials) of a tiny two-step agent in a few seconds.
TINY_TWO_STEP = ["two-step", "meta-a2c-lstm", "--trials", "3200", "--checkpoint-every", "1600",
                 "--set", "model.episodes_per_update=16", "--set", "model.hidden_size=8"]


class RunsCode:
    """What a planted checkpoint could carry: unpickling it calls os.system."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _plant(path: Path, marker: Path) -> None:
    """A file shaped like a checkpoint that runs a shell command when fully unpickled."""
    torch.save({"net": {}, "counts": {"trials": 0}, "payload": RunsCode(marker)}, path)


def _old_meta_a2c_checkpoint(path: Path) -> None:
    """What meta_a2c.py saved before checkpoints were read weights-only (same keys and types)."""
    from neurorl_cli.nets.meta_lstm import MetaLSTM

    hyper = MetaHyper(hidden_size=8)
    net = MetaLSTM(9, 2, hyper.hidden_size)
    optim = torch.optim.RMSprop(net.parameters(), lr=hyper.learning_rate, alpha=hyper.rmsprop_alpha, eps=hyper.rmsprop_eps)
    net(torch.zeros(3, 9), net.initial_state(3, torch.device("cpu")))[1].sum().backward()
    optim.step()  # the optimizer's state holds tensors per parameter
    torch.save({"net": net.state_dict(), "optim": optim.state_dict(),
                "counts": {"steps": 10, "trials": 2, "episodes": 1, "updates": 1},
                "rng": torch.get_rng_state(), "env_rng": torch.Generator().manual_seed(3).get_state(),
                "obs_dim": 9, "n_actions": 2, "hyper": hyper.model_dump()}, path)


def _old_td3_checkpoint(path: Path) -> None:
    """What td3.py saved before checkpoints were read weights-only: the agent, counters, random
    states, hyper-parameters and the replay tail as a list of trajectories (dicts of tensors)."""
    hyper = TD3Hyper()
    agent = TD3(hyper, torch.device("cpu"))
    replay = [{"obs": torch.randn(5, 6), "action": torch.randn(5, 2), "reward": torch.zeros(5), "done": torch.zeros(5)}
              for _ in range(3)]
    torch.save({"agent": agent.state_dict(), "counts": {"trials": 16, "steps": 80, "phase": 2, "phase1_trials": 32},
                "rng": torch.get_rng_state(), "generator": torch.Generator().manual_seed(1).get_state(),
                "hyper": hyper.model_dump(), "replay": replay}, path)


def test_checkpoints_in_the_format_saved_before_still_load(tmp_path):
    meta, td3 = tmp_path / "meta.zip", tmp_path / "td3.zip"
    _old_meta_a2c_checkpoint(meta)
    _old_td3_checkpoint(td3)

    policy = MetaA2CBackend().load_policy({}, meta, "cpu")
    policy.reset(2)
    assert policy.act(torch.zeros(2, 9).numpy()).shape == (2,)
    assert load_checkpoint(meta)["counts"] == {"steps": 10, "trials": 2, "episodes": 1, "updates": 1}

    hyper, actor, critic = load_nets(td3)
    assert (hyper.actor, hyper.critic) == ("Actor3", "Critic5")
    saved = load_checkpoint(td3)
    assert len(saved["replay"]) == 3 and saved["replay"][0]["obs"].shape == (5, 6)
    assert saved["agent"]["updates"] == 0 and saved["counts"]["phase"] == 2


@pytest.mark.parametrize("load", [lambda p: MetaA2CBackend().load_policy({}, p, "cpu"), load_nets, load_checkpoint],
                         ids=["meta-a2c", "td3", "loader"])
def test_a_checkpoint_that_would_run_code_is_refused_unrun(tmp_path, load):
    planted, marker = tmp_path / "step_000000000016.zip", tmp_path / "ran"
    _plant(planted, marker)
    with pytest.raises(UnreadableCheckpoint) as caught:
        load(planted)
    message = str(caught.value)
    assert str(planted) in message and "posix.system" in message and "\n" not in message
    assert not marker.exists()


def test_a_garbled_checkpoint_is_one_line_naming_it(tmp_path):
    garbled = tmp_path / "step_1.zip"
    _old_td3_checkpoint(garbled)
    garbled.write_bytes(garbled.read_bytes()[:500])
    with pytest.raises(UnreadableCheckpoint, match="cannot be read") as caught:
        load_nets(garbled)
    assert str(garbled) in str(caught.value) and "\n" not in str(caught.value)


def _checkpoints(home: Path) -> tuple[str, list[tuple[int, Path]]]:
    con = sqlite3.connect(home / "registry.db")
    run_dir, = con.execute("SELECT run_dir FROM run WHERE id = 1").fetchone()
    rows = con.execute("SELECT step, path FROM checkpoint WHERE run_id = 1 ORDER BY step").fetchall()
    con.close()
    run_dir = Path(run_dir) if Path(run_dir).is_absolute() else home / "runs" / run_dir
    return str(run_dir), [(step, run_dir / path) for step, path in rows]


def _sql(home: Path, statement: str, *args) -> None:
    con = sqlite3.connect(home / "registry.db")
    with con:
        con.execute(statement, args)
    con.close()


def _crash_after_last_checkpoint(home: Path, run_dir: str) -> None:
    """As if the worker had been killed just after its last checkpoint: its final status never
    written, the run marked crashed."""
    events = Path(run_dir) / "events.jsonl"
    lines = events.read_text().splitlines(keepends=True)
    events.write_text("".join(line for line in lines if '"status":"completed"' not in line))
    _sql(home, "UPDATE run SET status = 'crashed', error = 'killed' WHERE id = 1")


@pytest.mark.slow
def test_a_registered_checkpoint_that_would_run_code_is_refused_by_eval_watch_and_resume(neurorl_home, tmp_path):
    """Even a planted file whose sha256 made it into the registry (a worker that wrote it) is
    only reported: eval evaluates the other checkpoint, watch and resume fail, nothing runs."""
    cli("train", *TINY_TWO_STEP, check=True)
    run_dir, ((_, first), (step, last)) = _checkpoints(neurorl_home)
    marker = tmp_path / "ran"
    _plant(last, marker)
    _sql(neurorl_home, "UPDATE checkpoint SET sha256 = ? WHERE run_id = 1 AND step = ?", sha256(last), step)

    proc = cli("eval", "r1", "--all-checkpoints", "--trials", "200")
    assert proc.returncode == 1, proc.stderr
    assert f"checkpoint {last} refused" in proc.stderr and "posix.system" in proc.stderr
    con = sqlite3.connect(neurorl_home / "registry.db")
    evaluated = [s for s, in con.execute("SELECT c.step FROM evaluation e JOIN checkpoint c ON c.id = e.checkpoint_id")]
    con.close()
    assert evaluated == [1600]

    proc = cli("watch", "r1", "--checkpoint", "latest", "--gif", str(tmp_path / "w.gif"))
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"checkpoint {last} refused" in proc.stderr and not (tmp_path / "w.gif").exists()

    _crash_after_last_checkpoint(neurorl_home, run_dir)
    proc = cli("train", "--resume", "r1")
    assert proc.returncode == 1
    run = json.loads(cli("runs", "show", "r1", "--json", check=True).stdout)
    assert run["status"] == "failed" and "refused" in run["error"] and "posix.system" in run["error"]
    assert not marker.exists()


@pytest.mark.slow
def test_resume_passes_over_a_changed_checkpoint_and_refuses_when_none_is_intact(neurorl_home):
    cli("train", *TINY_TWO_STEP, check=True)
    run_dir, ((first_step, first), (_, last)) = _checkpoints(neurorl_home)
    _crash_after_last_checkpoint(neurorl_home, run_dir)

    # Every file changed: refused, and the run stays as it was, to resume once a file is restored.
    original_first = first.read_bytes()
    first.write_bytes(original_first + b"x")
    last.write_bytes(last.read_bytes() + b"x")
    proc = cli("train", "--resume", "r1")
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"checkpoint file {last} differs from the one registered" in proc.stderr
    assert "(and 1 older)" in proc.stderr and "nothing was changed" in proc.stderr and "seed 0 anew" in proc.stderr
    run = json.loads(cli("runs", "show", "r1", "--json", check=True).stdout)
    assert (run["status"], run["attempt"]) == ("crashed", 1)

    # The older file restored: the run resumes from it, with a warning naming the newer one.
    first.write_bytes(original_first)
    proc = cli("train", "--resume", "r1")
    assert proc.returncode == 0, proc.stderr
    assert f"checkpoint file {last} differs from the one registered" in proc.stderr
    assert f"resuming from step {first_step} instead" in proc.stderr
    assert json.loads((Path(run_dir) / "run.json").read_text())["resume_from"] == str(first)
    run = json.loads(cli("runs", "show", "r1", "--json", check=True).stdout)
    assert (run["status"], run["attempt"]) == ("completed", 2)
    load_checkpoint(last)  # saved again by the second attempt, and registered as it is now
    _, rows = _checkpoints(neurorl_home)
    con = sqlite3.connect(neurorl_home / "registry.db")
    registered = dict(con.execute("SELECT step, sha256 FROM checkpoint WHERE run_id = 1"))
    con.close()
    assert all(registered[step] == sha256(path) for step, path in rows)


# -- Slurm settings ------------------------------------------------------------------------

BAD_PROFILES = {
    "partition": 'partition = "gpu\\n#SBATCH --wrap=evil"',
    "account": 'account = "lab\\rrm -rf ~"',
    "qos": 'qos = "high prio"',
    "setup.1": 'setup = ["module load apptainer", "echo a\\necho b"]',
    "sbatch.constraint": '[slurm]\nsbatch = { constraint = "a100\\n#SBATCH --exclusive" }',
    "sbatch.'x\\ny'": 'sbatch = { "x\\ny" = "1" }',
    "sbatch.exclusive": 'sbatch = { exclusive = false }',
    "container": 'container = "/images/a.sif\\u0000"',
    "mem": "mem = inf",
}


@pytest.mark.parametrize("field", list(BAD_PROFILES))
def test_a_slurm_profile_value_that_would_add_script_lines_is_refused(neurorl_home, tmp_path, field):
    profile = tmp_path / "bad.toml"
    profile.write_text(BAD_PROFILES[field] + "\n")
    proc = cli("train", "two-step", "meta-a2c-lstm", "--launcher", "slurm", "--profile", str(profile))
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"field '{field}'" in proc.stderr and str(profile) in proc.stderr
    assert not (neurorl_home / "registry.db").exists()  # refused before anything is stored


@pytest.mark.parametrize("option,value", [("--partition", "gpu\n#SBATCH --wrap=evil"), ("--partition", ""),
                                          ("--container", "/images/a.sif\nrm -rf ~"), ("--time", "01:00\n:00")])
def test_a_slurm_option_that_would_add_script_lines_is_refused(neurorl_home, option, value):
    proc = cli("train", "two-step", "meta-a2c-lstm", "--launcher", "submitit-local", option, value)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and option in proc.stderr, proc.stderr
    assert not (neurorl_home / "registry.db").exists()


def test_valid_slurm_values_pass(tmp_path):
    from neurorl_cli.launch.profile import load_profile

    profile = tmp_path / "ok.toml"
    profile.write_text('partition = "gpu,gpu-long"\naccount = "lab_1"\nqos = "normal"\ntime = "1-00:00:00"\n'
                       'setup = ["module load apptainer"]\nsbatch = { constraint = "a100|h100", exclusive = true, '
                       '"cpus-per-gpu" = 8, comment = "two words" }\n')
    res = load_profile(profile)
    assert res.partition == "gpu,gpu-long" and res.time == 1440
    assert res.sbatch == {"constraint": "a100|h100", "exclusive": True, "cpus-per-gpu": 8, "comment": "two words"}


@pytest.mark.slow
def test_an_sb3_checkpoint_is_loaded_without_unpickling_its_entries(trained, tmp_path):
    """sb3 keeps some entries of its zip as cloudpickle; a planted one never runs, and the
    policy still acts and resumes (test_end_to_end resumes recurrent-ppo through the same load)."""
    import base64
    import zipfile

    import cloudpickle
    import numpy as np

    from neurorl_cli.engines.sb3.trainer import SB3Backend

    home = trained
    run_dir, path = sqlite3.connect(home / "registry.db").execute(
        "SELECT r.run_dir, c.path FROM run r JOIN checkpoint c ON c.run_id = r.id ORDER BY c.step LIMIT 1").fetchone()
    original = (Path(run_dir) if Path(run_dir).is_absolute() else home / "runs" / run_dir) / path
    config = json.loads(sqlite3.connect(home / "registry.db").execute("SELECT config FROM experiment").fetchone()[0])
    marker = tmp_path / "ran"
    planted = tmp_path / "planted.zip"
    with zipfile.ZipFile(original) as src, zipfile.ZipFile(planted, "w") as dst:
        for item in src.namelist():
            content = src.read(item)
            if item == "data":
                data = json.loads(content)
                evil = {":type:": "<class 'object'>", ":serialized:": base64.b64encode(cloudpickle.dumps(RunsCode(marker))).decode()}
                data["ep_info_buffer"] = evil  # an entry sb3 itself pickles
                data["extra"] = evil  # and one it does not know
                content = json.dumps(data).encode()
            dst.writestr(item, content)
    policy = SB3Backend().load_policy(config, planted, "cpu")
    assert not marker.exists()
    policy.reset(1)
    obs = np.zeros((1, *policy.model.observation_space.shape), dtype=np.float32)
    assert np.asarray(policy.act(obs)).shape[0] == 1
