"""Where a run came from: what launched it (the CLI's side) and what ran it (the worker's side).

Both land in the run's `versions` column, merged: the launch side is written when the CLI
queues the run, the worker side when its `running` status is ingested. Nothing here may
fail a run: a question that cannot be answered is recorded as missing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import socket
import subprocess
from pathlib import Path

# Environment variables that carry the container's identity from the launcher to the worker.
CONTAINER_IMAGE_ENV = "NEURORL_CONTAINER_IMAGE"
CONTAINER_DIGEST_ENV = "NEURORL_CONTAINER_DIGEST"


def neurorl_version() -> str:
    from neurorl_cli import __version__

    return __version__


def git_state(folder: Path) -> dict | None:
    """Commit and dirty flag of the repository holding `folder`, or None outside one."""

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    # Untracked files do not count: a scratch file beside the code does not change what ran.
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status), "root": git("rev-parse", "--show-toplevel")}


def file_digest(path: Path, cache: Path | None = None) -> str:
    """`sha256:<hex>` of a (possibly multi-GB) image, cached by path, size and mtime."""
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
    known: dict = {}
    if cache is not None and cache.is_file():
        try:
            known = json.loads(cache.read_text())
        except ValueError:
            known = {}
    if key in known:
        return known[key]
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    value = f"sha256:{digest.hexdigest()}"
    if cache is not None:
        from neurorl_cli import atomic

        known[key] = value
        try:
            atomic.write_json(cache, known)
        except OSError:
            pass  # a cache we cannot write only costs time
    return value


def launch_side(cwd: Path, container: dict | None = None) -> dict:
    """What the CLI knows when it queues a run."""
    out: dict = {
        "neurorl": neurorl_version(),
        "launch": {"host": socket.gethostname(), "cwd": str(cwd), "git": git_state(cwd)},
    }
    if container:
        out["container"] = container
    return out


def _gpu_name(device: str) -> str | None:
    if not device.startswith("cuda"):
        return None
    try:
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    except Exception:  # noqa: BLE001  (a driver problem must not fail the run)
        return None


def _container_here() -> dict | None:
    image = (os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER")
             or os.environ.get(CONTAINER_IMAGE_ENV))
    if image:
        return {"engine": "apptainer", "image": image, "digest": os.environ.get(CONTAINER_DIGEST_ENV)}
    if Path("/.dockerenv").exists():
        return {"engine": "docker", "digest": os.environ.get(CONTAINER_DIGEST_ENV)}
    return None


def installed_packages() -> dict[str, str]:
    return dict(_installed_packages())


@functools.cache  # read once per process: a seed group records it for each of its seeds
def _installed_packages() -> tuple[tuple[str, str], ...]:
    from importlib.metadata import distributions

    found = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name:
            found[name.lower()] = dist.version
    return tuple(sorted(found.items()))


def worker_side(device: str) -> dict:
    """What the worker knows once it runs: host, GPU, container, every installed package."""
    out: dict = {
        "neurorl-cli": neurorl_version(),
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "gpu": _gpu_name(device),
        "packages": installed_packages(),
    }
    container = _container_here()
    if container:
        out["container"] = container
    return _without_none(out)


def _without_none(obj):
    # The registry merges this into the launch side as a JSON merge patch, where null deletes.
    if isinstance(obj, dict):
        return {k: _without_none(v) for k, v in obj.items() if v is not None}
    return obj
