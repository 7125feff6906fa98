"""Atomic file writes: tmp file in the same folder, fsync, rename.

A reader (or a registry ingest) never sees a half-written file: it either finds the old
one or the new one, and a file is announced only after its rename.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from neurorl_cli.errors import WorkFailed


# Write errors that belong to the target's file system rather than to the code writing.
_STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS, errno.EACCES, errno.EPERM}


class CannotWrite(WorkFailed):
    """A file could not be written (a full disk, a read-only or missing folder): the message
    names the file; nothing half-written is left behind."""


def _cannot(target: Path, exc: OSError) -> CannotWrite:
    return CannotWrite(f"cannot write {target}: {exc.strerror or exc}")


@contextmanager
def atomic_path(target: Path, suffix: str = ""):
    """Yield a temporary path; on success it is fsynced and renamed onto `target`."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp" + suffix)
    except OSError as exc:
        raise _cannot(target, exc) from exc
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; files we publish follow the umask
    try:
        try:
            yield Path(tmp)
        except OSError as exc:
            if exc.errno in _STORAGE_ERRORS:
                raise _cannot(target, exc) from exc
            raise
        try:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            raise _cannot(target, exc) from exc
        _fsync_dir(target.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: Path, text: str) -> None:
    write_bytes(target, text.encode())


def write_json(target: Path, obj) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_with(target: Path, writer: Callable[[Path], None], suffix: str = "") -> None:
    """Let a library write to a temporary path (e.g. `model.save`), then rename it into place."""
    with atomic_path(target, suffix=suffix) as tmp:
        writer(tmp)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
