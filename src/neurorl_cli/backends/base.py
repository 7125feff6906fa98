"""What every training engine provides, and what a worker hands it."""

from __future__ import annotations

import importlib
import pickle
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from neurorl_cli.errors import WorkFailed
from neurorl_cli.runlog import RunLog


@dataclass
class RunConfig:
    """Everything a worker needs, read from `<run_dir>/run.json` (never from the registry)."""

    run_id: int
    seed: int
    attempt: int
    config: dict  # the frozen experiment config (task, model, budget)
    run_dir: str
    device: str = "auto"
    resume_from: str | None = None  # checkpoint path of the previous attempt
    threads: int | None = None  # torch CPU threads; None leaves the library default

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def steps(self) -> int:
        return int(self.config["budget"]["steps"])

    @property
    def checkpoint_every(self) -> int:
        return int(self.config["budget"]["checkpoint_every"])


class Policy(Protocol):
    """A trained agent acting on a batch of environments; it keeps its own recurrent state."""

    def reset(self, n_envs: int) -> None: ...

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray: ...

    def episode_started(self, mask: np.ndarray) -> None:
        """Environments in `mask` began a new episode: their recurrent state starts afresh."""

    def activity(self) -> dict[str, np.ndarray]: ...


class Backend(Protocol):
    name: str

    def train(self, run: RunConfig, log: RunLog) -> None: ...

    def evaluate(self, config: dict, checkpoint: Path, protocol: dict, device: str) -> tuple[dict, list[dict]]:
        """One checkpoint under one protocol: (metrics, one row per evaluated trial)."""

    def load_policy(self, config: dict, checkpoint: Path, device: str) -> Policy: ...


# sb3 is one backend for all its algorithms; native trainers are one module per algorithm.
BACKENDS = {
    "sb3": "neurorl_cli.backends.sb3:SB3Backend",
    "native/distributional-td": "neurorl_cli.backends.distributional_td:DistributionalTDBackend",
    "native/meta-a2c-lstm": "neurorl_cli.backends.meta_a2c:MetaA2CBackend",
    "native/td3": "neurorl_cli.backends.td3:TD3Backend",
    "sample-factory": "neurorl_cli.backends.sample_factory:SampleFactoryBackend",
}


def backend_for(config: dict) -> Backend:
    model = config["model"]
    key = model["engine"] if model["engine"] in BACKENDS else f"{model['engine']}/{model['algo']}"
    module, _, name = BACKENDS[key].partition(":")
    return getattr(importlib.import_module(module), name)()


def budget_notice(config: dict) -> str | None:
    """What a user should know before training: the engine's own note on its budget
    (`budget_note`), or, for an engine that trains in whole updates (`budget_grain`), what the
    budget rounds up to; None when it trains the budget as given."""
    from neurorl_cli.catalog import budget_total

    backend = backend_for(config)
    if hasattr(backend, "budget_note"):
        return f"{config['model']['name']}: {backend.budget_note(config)}"
    grain = getattr(backend, "budget_grain", lambda config: None)(config)
    unit, total = budget_total(config)
    if not grain or total % grain == 0:
        return None
    trained = -(-total // grain) * grain
    return (f"{config['model']['name']} trains in whole updates of {grain:,} {unit}: "
            f"the budget of {total:,} {unit} trains {trained:,}")


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def package_versions(names: list[str]) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version
    import platform

    out: dict[str, Any] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


class UnreadableCheckpoint(WorkFailed, ValueError):
    """A checkpoint file that cannot be read, or is refused because reading it could run code.
    Damaged data: exit 1 where it stops a command, and a ValueError to the callers that report a
    missing or damaged checkpoint and go on with the others."""


def load_checkpoint(path, map_location="cpu") -> dict:
    """A native backend's checkpoint, unpickled with torch's weights-only loader: tensors, plain
    containers and numbers only, so that a file planted on a shared file system cannot run code."""
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, ValueError) as exc:  # refused, cut or garbled
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if isinstance(exc, pickle.UnpicklingError) and found:
            raise UnreadableCheckpoint(
                f"checkpoint {path} refused: it holds a Python object ({found.group(1)}), which neurorl never saves "
                "and which loading could run as code; restore the file from a trusted copy or train again") from exc
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise UnreadableCheckpoint(f"checkpoint {path} cannot be read, it is damaged or not a checkpoint "
                                   f"({type(exc).__name__}: {first})") from exc


def env_seed(seed: int, index: int) -> int:
    """Each of a run's environments gets its own stream of trials, fixed by the run's seed."""
    return seed * 1_000 + index
