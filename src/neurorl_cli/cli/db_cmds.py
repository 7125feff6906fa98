"""`neurorl db status|upgrade|backup`."""

from __future__ import annotations

from pathlib import Path

import typer

db_app = typer.Typer(help="The registry file: schema status, upgrades, backups.", no_args_is_help=True,
                     epilog="Examples:\n\n"
                            "neurorl db status\n"
                            "neurorl db backup registry-copy.db")


@db_app.command(epilog="Examples:\n\n"
                       "neurorl db status\n"
                       "neurorl db status --json")
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Which registry is used, its schema revision and pending revisions (reads only)."""
    from neurorl_cli.registry.db import schema_state
    from neurorl_cli.cli.app import out
    from neurorl_cli.home import find_home
    from neurorl_cli.cli.common import print_json

    h = find_home()
    state = schema_state(h.registry)
    info = {
        "home": str(h.root), "chosen_by": h.how, "registry": str(h.registry), "exists": h.registry.exists(),
        "runs_root": str(h.runs), "revision": state.current, "head": state.head, "pending": state.pending,
        "newer_than_this_neurorl": state.too_new,
    }
    if h.registry.exists() and not state.too_new and not state.pending:
        from sqlmodel import Session

        from neurorl_cli.registry.db import open_registry
        from neurorl_cli.registry.queries import run_counts

        with Session(open_registry(h)) as session:
            info["runs"] = run_counts(session)
    if as_json:
        print_json(info)
        return
    out.print(f"registry  {info['registry']} ({'exists' if info['exists'] else 'not created yet'}; {h.how})")
    out.print(f"runs root {info['runs_root']}")
    out.print(f"schema    {state.current or '-'} (newest known {state.head})")
    if state.too_new:
        out.print("          newer than this neurorl: upgrade neurorl before using this registry")
    elif state.pending:
        out.print(f"pending   {', '.join(state.pending)} (applied by the next command that writes, or `neurorl db upgrade`)")
    if "runs" in info:
        out.print("runs      " + (", ".join(f"{n} {s}" for s, n in sorted(info["runs"].items())) or "none"))


@db_app.command(epilog="Examples:\n\n"
                       "neurorl db backup registry-copy.db\n"
                       "neurorl db upgrade")
def upgrade():
    """Apply pending schema revisions now (after a backup)."""
    from neurorl_cli.registry.db import ensure_writable, upgrade as do_upgrade
    from neurorl_cli.cli.app import out
    from neurorl_cli.home import find_home

    h = find_home()
    ensure_writable(h)
    applied = do_upgrade(h)
    out.print(f"applied {', '.join(applied)}" if applied else "registry is up to date")


@db_app.command(epilog="Examples:\n\n"
                       "neurorl db backup registry-copy.db\n"
                       "neurorl db backup ~/registry-before-upgrade.db")
def backup(file: Path = typer.Argument(..., metavar="FILE", help="Where to write the copy (must not exist).")):
    """A consistent copy of the registry, safe while other commands write."""
    from neurorl_cli.errors import UserError
    from neurorl_cli.registry.db import backup as do_backup
    from neurorl_cli.cli.app import out
    from neurorl_cli.home import find_home

    from neurorl_cli.outputs import file_to_write

    h = find_home()
    if not h.registry.exists():
        raise UserError(f"no registry at {h.registry} yet: nothing to back up")
    if file.exists():
        raise UserError(f"{file} exists already: give a new file name")
    file_to_write(file, "backup")
    out.print(f"wrote {do_backup(h.registry, file)}")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
