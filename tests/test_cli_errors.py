"""Bad input: one line saying what is wrong and what to do, exit code 2, nothing stored changed."""

from __future__ import annotations

import hashlib

import pytest

from .conftest import cli


def _state(home):
    files = sorted(p for p in home.rglob("*") if p.is_file() and p.suffix != ".lock" and "-wal" not in p.name and "-shm" not in p.name)
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "perceptual-decison-making", "recurrent-ppo"], "Did you mean perceptual-decision-making"),
        (["train", "perceptual-decision-making", "recurent-ppo"], "Did you mean recurrent-ppo"),
        (["train", "neurogym:NoSuchTask-v0", "ppo"], "unknown NeuroGym task"),
        (["train", "perceptual-decision-making", "ppo", "--set", "model.nope=1"], "no such setting"),
        (["train", "perceptual-decision-making", "ppo", "--set", "model.learning_rate=fast"], "expected float"),
        (["train", "perceptual-decision-making", "ppo", "--seeds", "x"], "--seeds"),
        (["train", "perceptual-decision-making", "ppo", "--steps", "0"], "positive"),
        (["train", "perceptual-decision-making", "ppo", "--device", "tpu"], "--device"),
        (["runs", "show", "r999"], "no run 'r999'"),
        (["eval", "nothing-here", "--best"], "no run or experiment"),
        (["eval", "tiny", "--all-checkpoints", "--protocol", "nope"], "--protocol nope"),
        (["watch", "r999", "--gif", "x.gif"], "no run 'r999'"),
        (["report", "nothing-here"], "no run or experiment"),
        (["export", "r999", "--trials", "t.csv"], "999"),
    ],
)
def test_bad_input(trained, args, message):
    before = _state(trained)
    proc = cli(*args, home=trained)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert _state(trained) == before


def test_unfit_pair_stores_nothing(tmp_path, neurorl_home):
    spec = tmp_path / "box-only.toml"
    spec.write_text('engine = "sb3"\nalgo = "PPO"\npolicy = "MlpPolicy"\nactions = ["box"]\n')
    proc = cli("train", "go-no-go", str(spec))
    assert proc.returncode == 2 and "needs discrete" in proc.stderr
    assert not (neurorl_home / "registry.db").exists()


def test_registry_path_not_writable(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = cli("runs", "list", home=blocker / "home")
    assert proc.returncode == 2 and "NEURORL_HOME" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
