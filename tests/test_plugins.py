"""The table of families and engines: every built-in honours its interface, pairs are decided by
what a task offers, and a broken plug-in is reported and left out without stopping neurorl."""

from __future__ import annotations

import json
import os

import pytest

from neurorl_cli import catalog, plugins
from neurorl_cli.interfaces import Engine, Family

from .conftest import cli


def test_every_builtin_honours_its_interface():
    assert set(plugins.families()) == {"neurogym", "conditioning", "meta-rl", "firefly", "doom"}
    assert set(plugins.engines()) == {"sb3", "native", "sample-factory"}
    assert all(isinstance(f, Family) for f in plugins.families().values())
    assert all(isinstance(e, Engine) for e in plugins.engines().values())
    # each family's spec is the union member of its name, each engine's likewise
    assert all(f.task_spec.model_fields["family"].annotation.__args__ == (name,) for name, f in plugins.families().items())
    assert all(e.model_spec.model_fields["engine"].annotation.__args__ == (name,) for name, e in plugins.engines().items())


def test_every_task_is_labelled_by_its_own_family():
    """`neurorl tasks` names each task's environment as its family describes it (a firefly task was
    once labelled "firefly schedule")."""
    rows = {row["name"]: row for row in json.loads(cli("tasks", "--json", check=True).stdout)}
    expected = {
        "perceptual-decision-making": "PerceptualDecisionMaking-v0",
        "conditioning-fixed": "cue-reward schedule (batched torch)",
        "harlow": "harlow (batched torch)",
        "two-step": "two-step (batched torch)",
        "firefly": "firefly navigation (batched torch)",
        "doom-basic": "ViZDoom basic (128x72, frame skip 4)",
    }
    assert {name: rows[name]["env"] for name in expected} == expected
    assert set(rows["harlow"]["models"]) == {"meta-a2c-lstm", "recurrent-ppo", "ppo", "a2c"}  # by capability


def test_pairs_are_decided_by_what_a_task_offers():
    harlow, firefly = catalog.load_task("harlow"), catalog.load_task("firefly")
    (config,) = catalog.resolve(harlow, catalog.load_model("ppo"))
    assert catalog.pair_problem(config) is None  # ppo's TOML lists only neurogym: the list is not asked
    (config,) = catalog.resolve(firefly, catalog.load_model("ppo"))
    assert "does not offer" in catalog.pair_problem(config)  # firefly offers no single environment
    (config,) = catalog.resolve(harlow, catalog.load_model("td3-modular"))
    assert "known motion model, which harlow does not offer" in catalog.pair_problem(config)


def test_a_broken_plugin_is_reported_once_and_left_out(tmp_path):
    site = tmp_path / "site"
    info = site / "neurorl_broken-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: neurorl-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[neurorl.families]\nbroken = neurorl_broken_missing.family:family\n"
                                           "[neurorl.engines]\nodd = json:dumps\n")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    proc = cli("tasks", env=env)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, proc.stderr
    broken, odd = sorted(warnings, key=lambda line: "'odd'" in line)
    assert "plug-in 'broken'" in broken and "ModuleNotFoundError" in broken
    assert "plug-in 'odd'" in odd and "does not provide the Engine interface" in odd
    assert "perceptual-decision-making" in proc.stdout


@pytest.mark.parametrize("name", ["neurogym:GoNogo-v0", "neurogym:NoSuchTask-v0"])
def test_a_family_makes_tasks_from_names(name):
    if name.endswith("NoSuchTask-v0"):
        with pytest.raises(Exception, match="unknown NeuroGym task 'NoSuchTask-v0'"):
            catalog.load_task(name)
    else:
        assert catalog.load_task(name).env.id == "GoNogo-v0"
