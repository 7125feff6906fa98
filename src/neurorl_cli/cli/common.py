"""Helpers shared by the command modules: opening the registry, JSON output."""

from __future__ import annotations

import json
from typing import Any

from ..home import find_home


def registry(ingest_logs: bool = True):
    """The upgraded registry engine, with run logs ingested (so statuses are current)."""
    from ..registry.db import open_registry
    from ..registry.ingest import ingest

    home = find_home()
    engine = open_registry(home)
    if ingest_logs:
        ingest(engine, warn=lambda msg: _warn(msg))
    return home, engine


def _warn(msg: str) -> None:
    from .app import err

    err.print(f"[yellow]warning:[/] {msg}")


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str, sort_keys=True))
