"""Where a command will write, checked before it does any work.

A report, an export, a backup or a GIF that cannot be written should fail in the first second,
naming the path, not after minutes of work. Each check makes the folder where the command would
(and says so when it cannot), then writes and removes a probe file there: permissions alone do
not tell (root ignores them; a read-only mount or a full quota does not show in the mode bits).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from neurorl_cli.errors import UserError


def _probe(folder: Path, option: str, what: Path) -> None:
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"{option} {what}: {existing} is a file, not a folder; choose another path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".neurorl-probe-")
    except OSError as exc:
        raise UserError(f"{option} {what}: cannot write in {folder} ({exc.strerror or exc}); choose another path") from None
    os.close(fd)
    os.unlink(probe)


def file_to_write(path: Path, option: str) -> Path:
    """`path` will be written as a file (replaced if it exists): not a folder, its folder writable."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder; give a file name in it")
    _probe(path.parent, option, path)
    return path


def folder_to_write(path: Path, option: str) -> Path:
    """`path` is a folder to write into (made if missing)."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path}: names an existing file; give a folder")
    _probe(path, option, path)
    return path
