"""A real Slurm cluster (one node, this machine): arrays through sbatch, scancel, requeue.

Runs with `make test-slurm` (root, slurm-wlm and munge installed; it starts the cluster).
Without NEURORL_TEST_SLURM=1 these tests are skipped: CI machines have no Slurm."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from . import slurm_cluster
from .conftest import cli
from .test_faults import LONG_DTD, _events, _running_worker, _wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("NEURORL_TEST_SLURM") != "1" or not slurm_cluster.available(),
                       reason="real Slurm: `make test-slurm` (root, slurm-wlm, munge)"),
]
TINY = ["conditioning-fixed", "distributional-td", "--trials", "20", "--checkpoint-every", "10"]


@pytest.fixture(scope="module", autouse=True)
def cluster():
    slurm_cluster.start()


def _show(run_id) -> dict:
    return json.loads(cli("runs", "show", f"r{run_id}", "--json", check=True).stdout)


def test_array_through_sbatch(neurorl_home):
    from neurorl_cli.launch.slurm import slurm_states

    proc = cli("train", *TINY, "--seeds", "0-2", "--launcher", "slurm", "--time", "10", "--cpus", "1",
               "--array-parallelism", "2", check=True)
    assert proc.stdout.count(": completed") == 3
    runs = json.loads(cli("runs", "list", "--json", check=True).stdout)
    jobs = [r["job_id"] for r in runs]
    assert len({j.split("_")[0] for j in jobs}) == 1 and sorted(j.split("_")[1] for j in jobs) == ["0", "1", "2"]
    assert set(slurm_states(jobs).values()) <= {"COMPLETED", "GONE"}  # no sacct here: scontrol answers
    script = next((neurorl_home / "runs" / ".submitit").glob("*/*_submission.sh")).read_text()
    assert "#SBATCH --array=0-2%2" in script and "#SBATCH --time=10" in script


def test_scancel_ends_with_a_final_checkpoint(neurorl_home):
    cli("train", *LONG_DTD, "--launcher", "slurm", "--time", "10", "--no-wait", check=True)
    _wait_for(lambda: _running_worker(neurorl_home), 60, "a checkpoint")
    job = _show(1)["job_id"]
    subprocess.run(["scancel", job], check=True)
    _wait_for(lambda: _show(1)["status"] == "cancelled", 60, "the run to show cancelled")
    shown = _show(1)
    assert "final checkpoint" in shown["error"] and shown["checkpoints"][-1]["step"] == shown["steps"]


def test_requeued_job_continues_as_the_next_attempt(neurorl_home):
    cli("train", *LONG_DTD, "--launcher", "slurm", "--time", "10", "--no-wait", check=True)
    run_dir, _ = _wait_for(lambda: _running_worker(neurorl_home), 60, "a checkpoint")
    subprocess.run(["scontrol", "requeue", _show(1)["job_id"]], check=True)
    _wait_for(lambda: _show(1)["status"] == "completed", 240, "the requeued run to complete")
    shown = _show(1)
    assert shown["attempt"] == 2 and shown["steps"] == 60000
    statuses = [(e["attempt"], e["status"]) for e in _events(run_dir) if e["type"] == "status"]
    assert statuses[:2] == [(1, "running"), (1, "cancelled")] and statuses[-1] == (2, "completed")
    last_first = max(e["step"] for e in _events(run_dir) if e["type"] == "checkpoint" and e["attempt"] == 1)
    assert min(e["step"] for e in _events(run_dir) if e["type"] == "metric" and e["attempt"] == 2) > last_first
