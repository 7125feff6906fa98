"""A task family from outside neurorl: tests/plugins/neurorl-toy, installed as a user would
install a plug-in, found through the `neurorl.families` entry point, and used through the CLI
only (tasks -> train -> eval -> report -> watch), with no edit of the core."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, cli

PLUGIN = REPO / "tests" / "plugins" / "neurorl-toy"
METHODS = "toy cue-match task (neurorl-toy plug-in)"  # from ToyFamily.methods


def install_plugin(tmp: Path) -> Path:
    """pip-install the plug-in into a folder of its own (on PYTHONPATH for the CLI only), from a
    copy, so that the build leaves nothing in the repository."""
    assert importlib.util.find_spec("setuptools") is not None, (
        "setuptools must be installed in this environment: the plug-in is built with --no-build-isolation")
    source = tmp / "src" / "neurorl-toy"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    target = tmp / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-input",
         "--disable-pip-version-check", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, f"pip install of the plug-in failed:\n{proc.stdout}\n{proc.stderr}"
    assert (target / "neurorl_toy" / "tasks" / "cue-match.toml").is_file(), "the task catalog did not ship as package data"
    return target


def test_core_names_no_plugin():
    """The plug-in needed no core edit: nothing in the core or its catalogs knows of it."""
    pattern = re.compile(r"\btoy\b|cue[-_]match|neurorl[-_]toy", re.IGNORECASE)
    mentions = []
    tracked = subprocess.run(["git", "ls-files", "src", "tasks", "models"], cwd=REPO, capture_output=True, text=True, check=True)
    for name in tracked.stdout.split():  # what a clone holds, not what an install built beside it
        path = REPO / name
        if path.is_file():
            text = path.read_bytes().decode("utf-8", errors="ignore")
            mentions += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in pattern.finditer(text)]
    assert not mentions, "the core mentions the plug-in:\n" + "\n".join(mentions)


@pytest.mark.slow
def test_plugin_family_through_the_cli(tmp_path):
    site = install_plugin(tmp_path)
    home = tmp_path / "home"
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
           "NEURORL_HOME": str(home)}

    def neurorl(*args: str) -> subprocess.CompletedProcess:
        return cli(*args, home=home, env=env, check=True, timeout=180)

    listing = neurorl("tasks", "--json")
    assert "plug-in 'toy'" not in listing.stderr, listing.stderr  # neurorl warns and goes on without a broken plug-in
    tasks = {row["name"]: row for row in json.loads(listing.stdout)}
    assert "cue-match" in tasks, f"the plug-in's task is not listed: {sorted(tasks)}\n{listing.stderr}"
    assert tasks["cue-match"]["family"] == "toy"
    assert "ppo" in tasks["cue-match"]["models"]

    neurorl("train", "cue-match", "ppo", "--seeds", "0-1", "--steps", "1024", "--checkpoint-every", "512",
            "--jobs", "2", "--name", "toy-ppo")
    runs = sorted(json.loads(neurorl("runs", "list", "--json").stdout), key=lambda r: r["seed"])
    assert [r["seed"] for r in runs] == [0, 1] and {r["status"] for r in runs} == {"completed"}
    for run in runs:
        shown = json.loads(neurorl("runs", "show", run["ref"], "--json").stdout)
        assert [c["step"] for c in shown["checkpoints"]] == [512, 1024]
        assert "train/episode_reward" in shown["latest_metrics"]  # the family's training_key

    neurorl("eval", "toy-ppo", "--all-checkpoints", "--trials", "50")
    best = []
    for run in runs:
        shown = json.loads(neurorl("runs", "show", run["ref"], "--json").stdout)
        metrics = shown["best"]["default"]["metrics"]
        assert metrics["trials"] == 50 and {"fraction_correct", "mean_reward"} <= set(metrics)
        best.append(metrics["fraction_correct"])
    # Always pressing one button scores about 0.5; PPO solves the task in a few hundred steps.
    assert max(best) >= 0.8, f"best fraction correct per seed: {best}"
    table = tmp_path / "trials.csv"
    neurorl("export", runs[0]["ref"], "--trials", str(table))
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 2 * 50 and "cue" in rows[0]  # 2 checkpoints x 50 trials, the family's conditions

    out = tmp_path / "report"
    neurorl("report", "toy-ppo", "--out", str(out))
    html = (out / "index.html").read_text()
    assert "cue-match" in html and METHODS in html
    assert list(out.glob("*.png"))

    gif = tmp_path / "toy.gif"
    neurorl("watch", runs[0]["ref"], "--checkpoint", "latest", "--gif", str(gif))
    assert gif.read_bytes()[:6] in (b"GIF89a", b"GIF87a")
