"""Where the registry and the run directories live.

The registry (SQLite) must sit on a local disk; run directories may be on a shared file
system. Hence two settings: NEURORL_HOME for the registry and NEURORL_RUNS for runs.
Without NEURORL_HOME, `.neurorl/` is found in the current directory or its parents (as git
finds `.git`), and created in the current directory only when none exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DIRNAME = ".neurorl"
PACKAGE_DIR = Path(__file__).resolve().parent


def bundled_dir(name: str) -> Path:
    """A folder shipped with neurorl: inside the installed package, or the source checkout's top."""
    inside = PACKAGE_DIR / "bundled" / name
    return inside if inside.is_dir() else PACKAGE_DIR.parents[1] / name


@dataclass(frozen=True)
class Home:
    root: Path
    runs: Path
    how: str  # why this folder was chosen, for `neurorl db status`

    @property
    def registry(self) -> Path:
        return self.root / "registry.db"

    @property
    def backups(self) -> Path:
        return self.root / "backups"

    @property
    def user_tasks(self) -> Path:
        return self.root / "tasks"

    @property
    def user_models(self) -> Path:
        return self.root / "models"


def find_home(cwd: Path | None = None) -> Home:
    env = os.environ.get("NEURORL_HOME")
    if env:
        root, how = Path(env).expanduser().resolve(), "NEURORL_HOME"
    else:
        cwd = (cwd or Path.cwd()).resolve()
        root, how = cwd / DIRNAME, "created in the current directory"
        for folder in (cwd, *cwd.parents):
            if (folder / DIRNAME).is_dir():
                root, how = folder / DIRNAME, f"found {DIRNAME}/ in {folder}"
                break
    runs_env = os.environ.get("NEURORL_RUNS")
    runs = Path(runs_env).expanduser().resolve() if runs_env else root / "runs"
    return Home(root=root, runs=runs, how=how)


def to_stored(path: str, runs: Path) -> str:
    """How the registry stores a path: relative to the runs root when it lies under it, so that
    moving NEURORL_HOME (or NEURORL_RUNS) with its runs keeps every run readable; other paths
    (a report written elsewhere) stay absolute."""
    if not path or not os.path.isabs(path):
        return path
    try:
        return Path(path).relative_to(runs).as_posix()
    except ValueError:
        return path


def from_stored(value: str, runs: Path) -> str:
    """A stored path made absolute again under today's runs root (absolute ones are kept)."""
    if not value:
        return value
    return str(runs / value)  # joining an absolute path yields that path
