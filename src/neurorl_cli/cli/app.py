"""The `neurorl` command: one Typer app, one module per command or noun.

Modules here parse and print; the work lives in the package. Bad input raises UserError
(one line, exit 2); work that failed in part raises WorkFailed (exit 1).
"""

from __future__ import annotations

import signal
import sys

import typer
from rich.console import Console
from typer.core import TyperArgument, TyperOption

from neurorl_cli.cli import completion
from neurorl_cli.errors import Interrupted, UserError, WorkFailed

app = typer.Typer(
    name="neurorl",
    help="Train RL agents on neuroscience tasks, keep every run in a registry, and study them.",
    epilog="Examples:\n\n"
           "neurorl tasks\n"
           "neurorl train perceptual-decision-making ppo --seeds 0-2 --name pdm\n"
           "neurorl eval pdm --all-checkpoints\n"
           "neurorl report pdm",
    no_args_is_help=True,
    add_completion=False,  # ours also take the shell's name (cli/completion.py)
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)
# Piped output is copied and parsed, so its tables take the width their cells need instead of
# $COLUMNS (never cut); on a terminal, tables fold long cells (common.table).
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 100_000)


def _value_name(self, ctx) -> str | None:
    # Typer writes each parameter's Python type after it (<str>, <bool>, <list[str]>). A reader
    # needs what the value means: the option's metavar (RUN, N, FILE); nothing after a flag, nor
    # after an argument, whose name column already shows its metavar.
    if isinstance(self, TyperArgument) or self.is_flag:
        return None
    return self.metavar or self.name.upper()


def _usage_name(self) -> str:
    # RUN and [RUN] in the usage line, as click writes them (Typer writes {RUN} when required).
    name = self.display_name_raw
    name = name if self.required else f"[{name}]"
    return name if self.nargs == 1 or name.rstrip("]").endswith("...") else f"{name}..."


TyperArgument.display_type_rich = TyperOption.display_type_rich = _value_name
TyperArgument._usage_display_name = _usage_name


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"neurorl {version('neurorl-cli')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print neurorl's version and exit."),
    install_completion: str = typer.Option(
        None, "--install-completion", metavar="[SHELL]", callback=completion.install, is_eager=True, expose_value=False,
        help=f"Install completion for SHELL ({', '.join(completion.SHELLS)}; default: the shell running neurorl)."),
    show_completion: str = typer.Option(
        None, "--show-completion", metavar="[SHELL]", callback=completion.show, is_eager=True, expose_value=False,
        help="Print the completion script for SHELL, to copy or customise (default: the shell running neurorl)."),
) -> None:
    pass


COMMAND_MODULES = [
    "catalog_cmds", "train_cmd", "runs_cmds", "eval_cmd", "report_cmd", "watch_cmd", "export_cmd", "db_cmds",
    "prune_cmd", "ui_cmd",
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
        # One program name however it is started (also `python -m neurorl_cli`): usage lines
        # match the examples, and shell completion is generated for `neurorl`.
        args = completion.bare_to_detect(sys.argv[1:] if argv is None else argv)
        app(args=args, prog_name="neurorl")  # Typer handles its own usage errors (exit 2)
    except (UserError, WorkFailed, Interrupted) as exc:
        label = {2: "error", 1: "failed", 130: "interrupted"}[exc.exit_code]
        err.print(f"[bold red]{label}:[/] {exc}")
        sys.exit(exc.exit_code)
