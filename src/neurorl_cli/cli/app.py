"""The `neurorl` command: one Typer app, one module per command or noun.

Modules here parse and print; the work lives in the package. Bad input raises UserError
(one line, exit 2); work that failed in part raises WorkFailed (exit 1).
"""

from __future__ import annotations

import signal
import sys

import typer
from rich.console import Console

from ..errors import Interrupted, UserError, WorkFailed

app = typer.Typer(
    name="neurorl",
    help="Train RL agents on neuroscience tasks, keep every run in a registry, and study them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


COMMAND_MODULES = [
    "catalog_cmds", "train_cmd", "runs_cmds", "eval_cmd", "report_cmd", "watch_cmd", "export_cmd", "db_cmds",
    "prune_cmd",
]


def _register() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").register(app)


def _interrupt(signum, frame):
    raise KeyboardInterrupt()


def main(argv: list[str] | None = None) -> None:
    # Ctrl-C and SIGTERM both stop cleanly, even where a parent shell left SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    _register()
    try:
        app(args=argv)  # Typer handles its own usage errors (exit 2)
    except (UserError, WorkFailed, Interrupted) as exc:
        label = {2: "error", 1: "failed", 130: "interrupted"}[exc.exit_code]
        err.print(f"[bold red]{label}:[/] {exc}")
        sys.exit(exc.exit_code)
