"""`neurorl eval REF --all-checkpoints | --best`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("eval", epilog="Examples:\n\n"
                                "neurorl eval pdm --all-checkpoints\n"
                                "neurorl eval pdm --all-checkpoints --protocol default --trials 200\n"
                                "neurorl eval pdm --best\n"
                                "neurorl eval pdm --best --json")
    def evaluate(
        ref: str = typer.Argument(..., metavar="EXPERIMENT|RUN", help="An experiment (e<id>, --name) or one run (r<id>); or a hash prefix."),
        all_checkpoints: bool = typer.Option(False, "--all-checkpoints", help="Evaluate every checkpoint not yet evaluated."),
        best: bool = typer.Option(False, "--best", help="Show the best checkpoint per run and protocol."),
        protocol: list[str] = typer.Option([], "--protocol", metavar="NAME", help="Protocol name(s); default all of the task's."),
        trials: int = typer.Option(None, "--trials", metavar="N", help="Trials per checkpoint (default: the protocol's)."),
        episodes: int = typer.Option(None, "--episodes", metavar="N", help="Episodes per checkpoint, for tasks evaluated in episodes (Doom)."),
        device: str = typer.Option("cpu", "--device", metavar="DEVICE", help="Where the policy runs."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output of the best checkpoints."),
    ):
        """Evaluate checkpoints into the registry, or name the best ones."""
        from neurorl_cli.errors import UserError, WorkFailed
        from neurorl_cli.cli.common import registry

        if all_checkpoints == best:
            raise UserError("choose one: --all-checkpoints (evaluate) or --best (show the best)")
        if trials is not None and episodes is not None:
            raise UserError("give --trials or --episodes, not both")
        trials = trials if episodes is None else episodes  # a protocol counts one or the other
        if trials is not None and trials <= 0:
            raise UserError("--trials/--episodes must be positive")
        if device != "cpu" and not device.startswith("cuda"):
            raise UserError(f"--device {device}: use cpu or cuda")
        if device.startswith("cuda"):
            import torch

            # The policy runs in this process: a missing GPU must not quietly become the CPU.
            if not torch.cuda.is_available():
                raise UserError(f"--device {device}: torch sees no CUDA GPU here; use --device cpu")
        _, engine = registry()
        if all_checkpoints:
            from neurorl_cli.cli.app import err
            from neurorl_cli.evaluation import evaluate_all

            failures = evaluate_all(engine, ref, protocol, trials, device, err)
            _show_best(engine, ref, protocol, as_json, quiet=True)
            if failures:
                raise WorkFailed(f"{failures} checkpoint(s) could not be evaluated (see warnings above); the others were")
        else:
            _show_best(engine, ref, protocol, as_json)


def _show_best(engine, ref: str, protocols: list[str], as_json: bool, quiet: bool = False) -> None:
    """The best checkpoint per run and protocol; `quiet` (after an evaluation) says nothing when
    nothing is evaluated, since the evaluation said why."""
    import numpy as np
    from sqlmodel import Session

    from neurorl_cli.errors import UserError
    from neurorl_cli.registry import queries
    from neurorl_cli.cli.app import out
    from neurorl_cli.cli.common import print_json, table as new_table

    with Session(engine) as session:
        target = queries.target(session, ref)
        runs = target.runs
        best = queries.best_checkpoint(session, [r.id for r in runs])
    rows = []
    for (run_id, protocol), (ev, ck) in sorted(best.items()):
        if protocols and protocol not in protocols:
            continue
        seed = next(r.seed for r in runs if r.id == run_id)
        rows.append({"run": run_id, "seed": seed, "protocol": protocol, "step": ck.step, "select": ev.select,
                     "score": ev.score, "higher_is_better": ev.higher_is_better, "metrics": ev.metrics,
                     "checkpoint": ck.path})
    if not rows:
        if quiet:
            return
        raise UserError(f"nothing evaluated for '{ref}' yet: run `neurorl eval {ref} --all-checkpoints`")
    if as_json:
        print_json(rows)
        return
    table = new_table("run", "seed", "protocol", "best step", "metric", "score", title=f"best checkpoints of {ref}")
    for r in rows:
        table.add_row(str(r["run"]), str(r["seed"]), r["protocol"], f"{r['step']:,}", r["select"], f"{r['score']:.3f}")
    out.print(table)
    for protocol in sorted({r["protocol"] for r in rows}):
        scores = [r["score"] for r in rows if r["protocol"] == protocol]
        mine = [r for r in rows if r["protocol"] == protocol]
        top = (max if mine[0]["higher_is_better"] else min)(mine, key=lambda r: r["score"])
        out.print(
            f"best {top['select']} under '{protocol}': {top['score']:.3f} (run {top['run']}, step {top['step']:,}); "
            f"mean over {len(scores)} seed(s) {np.mean(scores):.3f}, range {min(scores):.3f}-{max(scores):.3f}"
        )
