"""`neurorl export`: evaluated trials and training metrics as CSV files."""

from __future__ import annotations

from pathlib import Path

import typer

from neurorl_cli.errors import UserError
from neurorl_cli.cli.app import out


def register(app: typer.Typer) -> None:
    @app.command(epilog="Examples:\n\n"
                        "neurorl export pdm --trials trials.csv --metrics metrics.csv\n"
                        "neurorl export r1 --trials run1-trials.csv --protocol default")
    def export(
        ref: str = typer.Argument(..., metavar="RUN|EXPERIMENT", help="A run (r<id>) or an experiment (e<id>, --name); or a hash prefix."),
        trials: Path = typer.Option(None, "--trials", metavar="FILE", help="CSV with one row per evaluated trial."),
        metrics: Path = typer.Option(None, "--metrics", metavar="FILE", help="CSV with one row per training metric value."),
        protocol: str = typer.Option(None, "--protocol", metavar="NAME", help="Only trials of this evaluation protocol."),
    ) -> None:
        """Export what the registry holds about an experiment or run, for your own analyses."""
        from neurorl_cli import api
        from neurorl_cli.analysis.figures import write_csv
        from neurorl_cli.cli.common import registry as open_registry

        if trials is None and metrics is None:
            raise UserError("say what to export: --trials FILE.csv and/or --metrics FILE.csv")
        from neurorl_cli.outputs import file_to_write

        for path, option in ((trials, "--trials"), (metrics, "--metrics")):
            if path is not None:
                file_to_write(path, option)
        registry = api.Registry(open_registry()[1])
        run_ids = registry.run_ids(ref, prefer="run")
        if protocol is not None:
            experiments = registry.experiments()
            mine = experiments[experiments["experiment_id"].isin(registry.runs(run_ids)["experiment_id"])]
            known = sorted({p for config in mine["config"] for p in config["task"].get("protocols", {})})
            if protocol not in known:
                raise UserError(f"--protocol {protocol}: '{ref}' has protocols {', '.join(known) or 'none'}")
        if trials is not None:
            table = registry.trials(run_ids, protocol)
            write_csv(table, trials)
            out.print(f"{trials}: {len(table)} trials")
        if metrics is not None:
            table = registry.metrics(run_ids)
            write_csv(table, metrics)
            out.print(f"{metrics}: {len(table)} metric values")
