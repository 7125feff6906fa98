"""`neurorl report`: figures and an HTML page for an experiment, a run or a whole task."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from neurorl_cli.cli import completion
from neurorl_cli.errors import UserError
from neurorl_cli.cli.app import out


def register(app: typer.Typer) -> None:
    @app.command(epilog="Examples:\n\n"
                        "neurorl report pdm\n"
                        "neurorl report pdm --out figures/pdm --protocol default\n"
                        "neurorl report --task perceptual-decision-making")
    def report(
        ref: str = typer.Argument(None, metavar="EXPERIMENT|RUN", help="An experiment (e<id>, --name) or one run (r<id>); or a hash prefix."),
        task: str = typer.Option(None, "--task", metavar="TASK", autocompletion=completion.tasks, help="Compare every experiment of this task instead."),
        out_dir: Path = typer.Option(None, "--out", metavar="DIR", help="Folder for the page and figures (default report/<name>)."),
        protocol: str = typer.Option(None, "--protocol", metavar="NAME", help="Only this evaluation protocol."),
    ) -> None:
        """Write figures (PNG, SVG, CSV) and one self-contained index.html."""
        from neurorl_cli import api
        from neurorl_cli.report import assemble as reports
        from neurorl_cli.cli.common import registry as open_registry

        if (ref is None) == (task is None):
            raise UserError("give an experiment or run (REF), or --task T, but not both")
        if out_dir is not None:
            from neurorl_cli.outputs import folder_to_write

            folder_to_write(out_dir, "--out")
        registry = api.Registry(open_registry()[1])
        if task is not None:
            made = reports.task_report(registry, task, out_dir, protocol)
        else:
            made = reports.experiment_report(registry, ref, out_dir, protocol)
        reports.record_artifacts(registry, made, _query(ref, task, out_dir, protocol))
        out.print(str(made.index))


def _query(ref, task, out_dir, protocol) -> str:
    """The command that made the files, as it could be typed again."""
    words = ["neurorl", "report"] + ([ref] if ref else [])
    for flag, value in (("--task", task), ("--out", out_dir), ("--protocol", protocol)):
        if value is not None:
            words += [flag, str(value)]
    return shlex.join(words)
