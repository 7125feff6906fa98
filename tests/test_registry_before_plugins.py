"""A registry written by neurorl before task families and engines became plug-ins opens, and its
runs evaluate, report and play: a RecurrentPPO run on a NeuroGym task (already evaluated), a
RecurrentPPO run with a retinal encoder on a Doom task (sb3 saved classes by their module path),
a meta-A2C-LSTM run on Harlow and a distributional-TD run on a conditioning schedule.
The fixture tests/fixtures/registry-before-plugins.tar.gz was written by that code."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from tests.conftest import cli

FIXTURE = Path(__file__).parent / "fixtures" / "registry-before-plugins.tar.gz"


@pytest.fixture(scope="module")
def old_home(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("before")
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(where, filter="data")
    return where / "home"


def test_the_old_registry_lists_its_runs(old_home):
    rows = json.loads(cli("runs", "list", "--json", home=old_home, check=True).stdout)
    assert {(r["task"], r["model"], r["status"]) for r in rows} == {
        ("perceptual-decision-making", "recurrent-ppo", "completed"),
        ("doom-basic", "retinal-recurrent-ppo", "completed"),
        ("harlow", "meta-a2c-lstm", "completed"),
        ("conditioning-fixed", "distributional-td", "completed"),
    }


@pytest.mark.parametrize("name, trials", [("pdm", "20"), ("doomsb3", "1"), ("harlow", "12"), ("cond", "20")])
def test_old_runs_evaluate_and_report(old_home, tmp_path, name, trials):
    cli("eval", name, "--all-checkpoints", "--trials", trials, home=old_home, check=True)
    cli("report", name, "--out", str(tmp_path / name), home=old_home, check=True)
    page = (tmp_path / name / "index.html").read_text()
    assert "Methods" in page and "None" not in page.split("Methods", 1)[1].split("</p>", 1)[0]


def test_an_old_retinal_sb3_checkpoint_plays(old_home, tmp_path):
    gif = tmp_path / "doom.gif"
    cli("watch", "r2", "--checkpoint", "latest", "--gif", str(gif), home=old_home, check=True)
    assert gif.stat().st_size > 0


def test_sb3_itself_loads_an_old_retinal_checkpoint(old_home):
    """sb3's own `load` (a user's notebook) unpickles the features extractor by the module path it
    was saved under, which the plug-in layout moved: the old path still imports."""
    from sb3_contrib import RecurrentPPO

    (path,) = (old_home / "runs").glob("000002-*/checkpoints/step_*.zip")
    model = RecurrentPPO.load(path, device="cpu")
    assert type(model.policy.features_extractor).__name__ == "RetinalFeatures"
