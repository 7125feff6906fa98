"""Helpers every engine uses: the device, package versions, weights-only checkpoint loading."""

from __future__ import annotations

import pickle
import re
from typing import Any

from neurorl_cli.errors import WorkFailed


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
