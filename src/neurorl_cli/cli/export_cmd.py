"""`neurorl export`: evaluated trials and training metrics as CSV files."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import UserError
from .app import out


def register(app: typer.Typer) -> None:
    @app.command()
    def export(
        ref: str = typer.Argument(..., help="A run (id or hash prefix) or an experiment (--name or hash prefix)."),
        trials: Path = typer.Option(None, "--trials", help="CSV with one row per evaluated trial."),
        metrics: Path = typer.Option(None, "--metrics", help="CSV with one row per training metric value."),
        protocol: str = typer.Option(None, "--protocol", help="Only trials of this evaluation protocol."),
    ) -> None:
        """Export what the registry holds about an experiment or run, for your own analyses."""
        from .. import api
        from ..analysis.figures import write_csv
        from .common import registry as open_registry

        if trials is None and metrics is None:
            raise UserError("say what to export: --trials FILE.csv and/or --metrics FILE.csv")
        registry = api.Registry(open_registry()[1])
        run_ids = registry.run_ids(ref, prefer="run")
        if trials is not None:
            table = registry.trials(run_ids, protocol)
            write_csv(table, trials)
            out.print(f"{trials}: {len(table)} trials")
        if metrics is not None:
            table = registry.metrics(run_ids)
            write_csv(table, metrics)
            out.print(f"{metrics}: {len(table)} metric values")
