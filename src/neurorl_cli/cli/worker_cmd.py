"""`neurorl _worker RUN_DIR` (hidden): what a dispatcher starts for each run."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("_worker", hidden=True)
    def worker(run_dir: Path):
        from ..worker import run_worker

        raise typer.Exit(run_worker(run_dir))
