"""The suite's forked CLI processes (tests/zygote.py) answer as fresh ones do."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from .conftest import cli, zygote


def _env(**extra: str) -> dict:
    """The environment `cli` gives a command."""
    return {"COLUMNS": "200", **os.environ, **extra}


def _fresh(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neurorl_cli", *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("args", [
    ("runs", "list"),
    ("runs", "show", "r9"),  # a usage error: exit 2 and one line
    ("train", "firefly", "td3-modular", "--set", "model.actor=Actor9"),
    ("tasks",),
    ("--help",),
])
def test_a_forked_command_answers_as_a_fresh_process(neurorl_home, args):
    forked, fresh = cli(*args), _fresh(*args, env=_env())
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)


def test_each_command_reads_its_own_home_and_a_timeout_kills_only_it(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    cli("runs", "list", home=one, check=True)  # creates the registry it reads
    assert (one / "registry.db").is_file() and not two.exists()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(subprocess.TimeoutExpired):
        cli("ui", "--port", str(port), home=two, timeout=3)  # serves until stopped
    assert cli("--version").returncode == 0  # the zygote serves on


def test_an_environment_read_at_import_gets_its_own_zygote():
    assert zygote(_env(NEURORL_HOME="/elsewhere")) is zygote(_env())
    # rich reads the width when the CLI's consoles are made, at import
    narrow = cli("--help", env={"COLUMNS": "60"})
    assert zygote(_env(COLUMNS="60")) is not zygote(_env())
    assert narrow.stdout == _fresh("--help", env=_env(COLUMNS="60")).stdout != cli("--help").stdout
