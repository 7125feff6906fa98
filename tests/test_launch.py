"""`--launcher submitit-local|slurm`: the submitit code path for real, resources from options and profiles,
workers in a container."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
import time

import pytest

from neurorl_cli.errors import UserError
from neurorl_cli.home import find_home
from neurorl_cli.launch.profile import load_profile, parse_mem, parse_time, resources
from neurorl_cli.launch.slurm import worker_command

from .conftest import cli

TINY = ["conditioning-fixed", "distributional-td", "--trials", "20", "--checkpoint-every", "10"]


@pytest.mark.slow
def test_submitit_local_trains_and_stores_job_ids(neurorl_home):
    proc = cli("train", *TINY, "--seeds", "0-1", "--jobs", "2", "--launcher", "submitit-local", check=True)
    assert proc.stdout.count(": completed") == 2
    runs = json.loads(cli("runs", "list", "--json", check=True).stdout)
    assert {r["status"] for r in runs} == {"completed"} and {r["launcher"] for r in runs} == {"submitit-local"}
    assert all(r["job_id"] and r["job_id"].isdigit() for r in runs) and len({r["job_id"] for r in runs}) == 2
    from submitit.core.utils import pickle_load

    for r in runs:  # submitit itself saw each job succeed, and the job returned the worker's exit code
        outcome, value = pickle_load(neurorl_home / "runs" / ".submitit" / r["job_id"] / f"{r['job_id']}_0_result.pkl")
        assert (outcome, value) == ("success", 0)


@pytest.mark.slow
def test_no_wait_submits_and_later_commands_follow(neurorl_home):
    proc = cli("train", *TINY, "--launcher", "submitit-local", "--no-wait", check=True)
    assert "submitted as job" in proc.stdout
    deadline = time.time() + 90
    while time.time() < deadline:
        (run,) = json.loads(cli("runs", "list", "--json", check=True).stdout)
        if run["status"] == "completed":
            break
        time.sleep(1)
    assert run["status"] == "completed" and run["steps"] == 20


SHIM = """#!/bin/sh
# Stands in for apptainer (none here): records its arguments, then runs the command it was given
# outside any image: exec [--nv] --bind DIR IMAGE python ARGS...
echo "$@" >> "$SHIM_LOG"
shift
[ "$1" = "--nv" ] && shift
shift 3
shift
exec "$SHIM_PYTHON" "$@"
"""


@pytest.mark.slow
def test_container_wraps_each_worker_and_is_recorded(neurorl_home, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "apptainer"
    shim.write_text(SHIM)
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    image = tmp_path / "neurorl.sif"
    image.write_bytes(b"not really an image" * 100)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("SHIM_LOG", str(tmp_path / "calls"))
    monkeypatch.setenv("SHIM_PYTHON", sys.executable)
    cli("train", *TINY, "--launcher", "submitit-local", "--container", str(image), check=True)
    shown = json.loads(cli("runs", "show", "r1", "--json", check=True).stdout)
    assert shown["status"] == "completed"
    (call,) = (tmp_path / "calls").read_text().splitlines()
    run_dir = shown["run_dir"]
    assert call == f"exec --nv --bind {run_dir} {image} python -m neurorl_cli.worker {run_dir}"
    digest = "sha256:" + hashlib.sha256(image.read_bytes()).hexdigest()
    assert shown["versions"]["container"]["digest"] == digest
    assert shown["versions"]["container"]["image"] == str(image)
    # a missing image is bad input, refused before anything is stored
    proc = cli("train", *TINY, "--seeds", "1", "--launcher", "submitit-local", "--container", str(tmp_path / "no.sif"))
    assert proc.returncode == 2 and "no such image" in proc.stderr


def test_worker_command_without_and_with_container():
    assert worker_command("/r/1", None) == [sys.executable, "-m", "neurorl_cli.worker", "/r/1"]
    assert worker_command("/r/1", "/i.sif", nv=False) == [
        "apptainer", "exec", "--bind", "/r/1", "/i.sif", "python", "-m", "neurorl_cli.worker", "/r/1"]


def test_times_and_memory():
    assert parse_time("90") == 90 and parse_time("01:30:00") == 90 and parse_time("1-00:00:00") == 1440
    assert parse_time("00:00:30") == 1 and parse_time("2-3") == 2 * 1440 + 180
    assert parse_mem("16G") == 16 and parse_mem("512M") == 0.5 and parse_mem("1T") == 1024
    with pytest.raises(ValueError):
        parse_time("soon")


def test_profile_then_options_on_top(tmp_path):
    home = find_home()
    home.root.mkdir(parents=True)
    (home.root / "slurm.toml").write_text('[slurm]\npartition = "gpu"\ntime = "02:00:00"\ngpus = 1\nmem = "16G"\n'
                                          'array_parallelism = 8\nsbatch = { constraint = "a100" }\n')
    res = resources(home, None, partition=None, time="30", gpus=None, cpus=4, mem=None)
    assert (res.partition, res.time_min, res.gpus, res.cpus, res.mem, res.array_parallelism) == ("gpu", 30, 1, 4, 16, 8)
    assert res.sbatch == {"constraint": "a100"}
    bad = tmp_path / "bad.toml"
    bad.write_text("partition = 'gpu'\ngpu = 2\n")
    with pytest.raises(UserError, match=r"bad.toml, field 'gpu'"):
        load_profile(bad)
    with pytest.raises(UserError, match="--gpus"):
        resources(home, None, gpus=-1)


@pytest.mark.skipif(shutil.which("srun") is None, reason="submitit's Slurm executor needs srun on PATH")
def test_slurm_job_script_carries_the_resources(tmp_path):
    from neurorl_cli.launch.profile import Resources
    from neurorl_cli.launch.slurm import SubmititDispatcher

    res = Resources(partition="gpu", time=90, gpus=1, cpus=4, mem=16, array_parallelism=3, account="lab",
                    setup=["module load apptainer"], sbatch={"constraint": "a100"})
    ex = SubmititDispatcher(None, "slurm", res, "auto", None, tmp_path).executor()
    ex._executor.parameters["map_count"] = 10  # as for an array of 10 runs
    script = ex._executor._make_submission_file_text("python -m submitit.core._submit x", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --cpus-per-task=4", "#SBATCH --mem=16GB", "#SBATCH --array=0-9%3",
                 "#SBATCH --account=lab", "#SBATCH --constraint=a100", "module load apptainer"):
        assert line in script, line


def test_cluster_options_on_the_local_launcher_are_refused():
    proc = cli("train", *TINY, "--partition", "gpu")
    assert proc.returncode == 2 and "--partition" in proc.stderr and "slurm" in proc.stderr
    proc = cli("train", *TINY, "--launcher", "lsf")
    assert proc.returncode == 2 and "submitit-local" in proc.stderr
