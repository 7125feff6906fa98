"""The `neurorl` command: one Typer app, one module per command or noun.

Modules here parse and print; the work lives in the package. Bad input raises UserError
(one line, exit 2); work that failed in part raises WorkFailed (exit 1).
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from ..errors import UserError, WorkFailed

app = typer.Typer(
    name="neurorl",
    help="Train RL agents on neuroscience tasks, keep every run in a registry, and study them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


COMMAND_MODULES = ["catalog_cmds", "train_cmd", "runs_cmds", "eval_cmd", "db_cmds", "worker_cmd"]


def _register() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").register(app)


def main(argv: list[str] | None = None) -> None:
    _register()
    try:
        app(args=argv, standalone_mode=False)
    except UserError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)
    except WorkFailed as exc:
        err.print(f"[bold red]failed:[/] {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click's usage errors and the like
        import click

        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        raise
