"""Shared fixtures: every test gets its own registry (NEURORL_HOME in a temporary folder)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# `make test` runs test processes side by side (pytest -n 2). torch's default of one thread per
# core in each of them, and in every CLI process they start, oversubscribes the cores, and the
# threads waiting on one another burn the time (four two-step seeds took 352 s on two threads
# beside one busy core, 81 s on one). Share the cores between the test processes instead, as
# `neurorl train --jobs` shares them between its workers. Set before anything imports torch.
_SIDE_BY_SIDE = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _SIDE_BY_SIDE > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _SIDE_BY_SIDE)))


@pytest.fixture(autouse=True)
def neurorl_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("NEURORL_HOME", str(home))
    monkeypatch.delenv("NEURORL_RUNS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return home


def cli(*args: str, home: Path | None = None, check: bool = False, timeout: float = 600,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `neurorl ARGS` as a user would: a separate process, its exit code, its output.
    `env`: variables set for it on top of this process's environment.

    The process is forked from one that has already imported the libraries (tests/zygote.py)
    under the same environment, but for the variables read only when a command runs."""
    env = {**os.environ, **(env or {})}
    if home is not None:
        env["NEURORL_HOME"] = str(home)
    env.setdefault("COLUMNS", "200")
    proc = zygote(env).run(list(args), env, timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"neurorl {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def _read_at_import(env: dict[str, str]) -> tuple:
    """The variables a command could have read before the fork: all but ours (read when a
    command runs; tests/test_zygote.py checks it) and pytest's note of the current test."""
    return tuple(sorted((k, v) for k, v in env.items()
                        if not k.startswith("NEURORL_") and k not in ("XDG_CACHE_HOME", "PYTEST_CURRENT_TEST")))


_ZYGOTES: dict[tuple, "_Zygote"] = {}  # by the environment they were started in, most recent last
_KEEP = 2  # tests that change PATH or PYTHONPATH need their own; a few hundred MB each


def zygote(env: dict[str, str]) -> "_Zygote":
    """The zygote started under `env` (as far as imports could read it), started if need be."""
    key = _read_at_import(env)
    found = _ZYGOTES.pop(key, None)
    if found is None or found.proc.poll() is not None:
        found = _Zygote(env)
    _ZYGOTES[key] = found
    while len(_ZYGOTES) > _KEEP:
        _ZYGOTES.pop(next(iter(_ZYGOTES))).close()
    return found


class _Zygote:
    """One tests/zygote.py: it forks a child per command, one at a time."""

    def __init__(self, env: dict[str, str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.zygote"], cwd=REPO, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.pending = b""
        assert self._reply(300) == {"ready": True}

    def close(self) -> None:
        self.proc.stdin.close()  # it exits at the end of its input
        self.proc.wait(timeout=60)

    def run(self, args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "neurorl_cli", *args]
        with tempfile.TemporaryDirectory() as folder:
            out, err = Path(folder, "stdout"), Path(folder, "stderr")
            request = {"args": args, "env": env, "cwd": os.getcwd(), "stdout": str(out), "stderr": str(err)}
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
            pid = self._reply(60)["pid"]
            reply = self._reply(timeout)
            if reply is None:
                os.kill(pid, signal.SIGKILL)
                self._reply(60)
                raise subprocess.TimeoutExpired(command, timeout, out.read_text(), err.read_text())
            return subprocess.CompletedProcess(command, reply["rc"], out.read_text(), err.read_text())

    def _reply(self, timeout: float) -> dict | None:
        """The zygote's next line, or None if none came within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"tests/zygote.py exited {self.proc.wait()}")
            self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        return json.loads(line)


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test, then as it was."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    """A registry holding one tiny real experiment: recurrent-ppo on perceptual-decision-making,
    2 seeds x 1024 steps, checkpoints every 512 steps."""
    home = tmp_path_factory.mktemp("trained") / "home"
    cli("train", "perceptual-decision-making", "recurrent-ppo", "--seeds", "0-1", "--steps", "1024",
        "--checkpoint-every", "512", "--jobs", "2", "--name", "tiny",
        "--set", "model.n_steps=64", "--set", "model.batch_size=64", "--set", "model.lstm_hidden_size=32",
        home=home, check=True)
    return home


@pytest.fixture
def trained_copy(trained, tmp_path, monkeypatch) -> Path:
    """A private copy of the trained registry, for tests that add to it (run directories are
    stored relative to the runs root, so the copy points at its own)."""
    import shutil

    home = tmp_path / "trained-copy"
    shutil.copytree(trained, home)
    monkeypatch.setenv("NEURORL_HOME", str(home))
    return home


def stored_path(home: Path, value: str) -> Path:
    """A path as the registry stores it (relative to the runs root, `home`/runs in tests), made whole."""
    path = Path(value)
    return path if path.is_absolute() else home / "runs" / path


def resume_in(run_dir: Path, checkpoint: Path, into: Path) -> Path:
    """A second attempt of `run_dir`'s run from `checkpoint`, run by the worker in a new directory
    (what `train --resume` does, without the registry, so the first attempt stays to compare)."""
    from neurorl_cli.runlog import read_run_file, write_run_file
    from neurorl_cli.worker import run_worker

    spec = read_run_file(Path(run_dir))
    spec.update(run_dir=str(into), attempt=2, resume_from=str(checkpoint))
    write_run_file(Path(into), spec)
    assert run_worker(Path(into)) == 0
    return Path(into)
