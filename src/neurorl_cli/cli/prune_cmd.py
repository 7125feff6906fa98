"""`neurorl prune`: delete checkpoint files other than the best per protocol and the last."""

from __future__ import annotations

import typer


def confirm(question: str, yes: bool) -> bool:
    """Ask before deleting; without a terminal to ask on, --yes must say it."""
    import sys

    from neurorl_cli.errors import UserError

    if yes:
        return True
    if not sys.stdin.isatty():
        raise UserError("nothing was deleted: add --yes to confirm (or --dry-run to only see what would go)")
    return typer.confirm(question, default=False)


def register(app: typer.Typer) -> None:
    @app.command(epilog="Examples:\n\n"
                        "neurorl prune --dry-run\n"
                        "neurorl prune pdm --yes")
    def prune(
        refs: list[str] = typer.Argument(None, metavar="RUN|EXPERIMENT...", help="Runs or experiments (default: all)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be deleted, delete nothing."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    ):
        """Delete checkpoint files other than each run's last and its best under every protocol.

        Rows and evaluations stay (learning curves stay whole); runs still training and runs
        never evaluated keep all their checkpoints."""
        from sqlmodel import Session

        from neurorl_cli.registry.storage import apply_prune, human, plan_prune, runs_of
        from neurorl_cli.cli.app import out
        from neurorl_cli.cli.common import registry

        _, engine = registry()
        with Session(engine) as session:
            plan = plan_prune(session, runs_of(session, refs or [], prefer="experiment"))
        if plan.active:
            out.print(f"skipped {len(plan.active)} runs still queued or running: {', '.join(map(str, plan.active))}")
        if plan.unevaluated:
            ids = ", ".join(map(str, plan.unevaluated))
            out.print(f"kept every checkpoint of {len(plan.unevaluated)} runs never evaluated ({ids}): "
                      f"`neurorl eval RUN --all-checkpoints` first")
        if not plan.checkpoints and not plan.leftovers:
            out.print("nothing to prune")
            return
        what = f"{len(plan.checkpoints)} checkpoints of {len(plan.runs)} runs"
        if plan.leftovers:
            what += f" and {len(plan.leftovers)} temporary files left by interrupted writes"
        out.print(f"prune frees {human(plan.bytes)}: {what}")
        if dry_run:
            for _, path in plan.checkpoints:
                out.print(f"  would delete {path}")
            return
        if not confirm("delete them?", yes):
            out.print("nothing deleted")
            return
        apply_prune(engine, plan)
        out.print(f"freed {human(plan.bytes)}")
