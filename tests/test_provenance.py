"""Every run records where it came from: neurorl, the launch directory's commit and dirty flag,
packages, host, GPU (when there is one), container."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from neurorl_cli.provenance import git_state

TINY = ["conditioning-fixed", "distributional-td", "--trials", "20", "--checkpoint-every", "10"]


def _git(folder, *args):
    return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True, text=True).stdout.strip()


def _repo(tmp_path):
    repo = tmp_path / "project"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "notes.txt").write_text("v1\n")
    _git(repo, "add", "notes.txt")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    return repo


def test_git_state_commit_dirty_and_outside(tmp_path):
    repo = _repo(tmp_path)
    state = git_state(repo)
    assert state["commit"] == _git(repo, "rev-parse", "HEAD") and state["dirty"] is False
    (repo / "scratch.txt").write_text("untracked files do not make it dirty")
    assert git_state(repo)["dirty"] is False
    (repo / "notes.txt").write_text("v2\n")
    assert git_state(repo)["dirty"] is True
    outside = tmp_path / "plain"
    outside.mkdir()
    assert git_state(outside) is None or git_state(outside)["root"] != str(outside)


@pytest.mark.slow
def test_a_run_records_its_provenance(neurorl_home, tmp_path):
    repo = _repo(tmp_path)
    (repo / "notes.txt").write_text("changed, not committed\n")
    env = {**os.environ, "NEURORL_HOME": str(neurorl_home)}
    subprocess.run([sys.executable, "-m", "neurorl_cli", "train", *TINY], cwd=repo, env=env, check=True,
                   capture_output=True)
    shown = json.loads(subprocess.run([sys.executable, "-m", "neurorl_cli", "runs", "show", "r1", "--json"], cwd=repo,
                                      env=env, check=True, capture_output=True, text=True).stdout)
    v = shown["versions"]
    assert v["neurorl"] == v["neurorl-cli"] == "0.1.0"
    assert v["launch"]["git"] == {"commit": _git(repo, "rev-parse", "HEAD"), "dirty": True, "root": str(repo)}
    assert v["launch"]["cwd"] == str(repo) and v["launch"]["host"] == socket.gethostname()
    assert v["host"] == socket.gethostname() and v["python"].count(".") == 2
    assert v["packages"]["torch"].startswith("2.13.0") and v["packages"]["submitit"] == "1.5.4"
    assert v["torch"].startswith("2.13.0")  # the backend's own list stays beside the full one
    assert "gpu" not in v  # CPU run: no GPU to name
