"""`neurorl runs list|show|matrix|rm`."""

from __future__ import annotations

import typer

from neurorl_cli.cli import completion
from neurorl_cli.cli.common import table as new_table

runs_app = typer.Typer(help="Stored runs: list them, show one, see a sweep as a matrix, remove some.", no_args_is_help=True,
                       epilog="Examples:\n\n"
                              "neurorl runs list\n"
                              "neurorl runs show r1\n"
                              "neurorl runs matrix")


def _run_row(run, exp) -> dict:
    from neurorl_cli.specs import budget_total

    return {
        "id": run.id, "ref": f"r{run.id}", "experiment": exp.id, "experiment_ref": f"e{exp.id}", "experiment_name": exp.name, "experiment_hash": exp.config_hash,
        "run_hash": run.run_hash, "task": exp.task, "model": exp.model, "seed": run.seed, "status": run.status,
        "attempt": run.attempt, "steps": run.steps_done, "budget": budget_total(exp.config)[1],
        "budget_unit": budget_total(exp.config)[0],
        "device": run.device, "host": run.host, "launcher": run.launcher, "job_id": run.job_id, "run_dir": run.run_dir,
        "error": run.error, "outcome": run.outcome, "created": run.created, "started": run.started, "ended": run.ended,
    }


@runs_app.command("list", epilog="Examples:\n\n"
                                 "neurorl runs list\n"
                                 "neurorl runs list --task perceptual-decision-making --status completed\n"
                                 "neurorl runs list --model ppo --json")
def list_runs(
    task: str = typer.Option(None, "--task", metavar="TASK", autocompletion=completion.tasks, help="Only runs of this task."),
    model: str = typer.Option(None, "--model", metavar="MODEL", autocompletion=completion.models, help="Only runs of this model."),
    status: str = typer.Option(None, "--status", metavar="STATUS", autocompletion=completion.statuses, help="Only runs in this status (queued, running, completed, ...)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable listing."),
):
    """Runs, newest last, with their status and progress."""
    from sqlmodel import Session

    from neurorl_cli.errors import UserError
    from neurorl_cli.registry import queries
    from neurorl_cli.registry.models import RUN_STATUSES
    from neurorl_cli.cli.app import out
    from neurorl_cli.cli.common import print_json, registry

    if status and status not in RUN_STATUSES:
        raise UserError(f"--status {status}: one of {', '.join(RUN_STATUSES)}")
    _, engine = registry()
    with Session(engine) as session:
        rows = [_run_row(r, e) for r, e in queries.runs_with_experiments(session, task, model, status)]
    if as_json:
        print_json(rows)
        return
    table = new_table("run", "experiment", "task", "model", "seed", "status", "attempt", "progress")
    for r in rows:
        label = r["experiment_name"] or r["experiment_hash"][:12]
        table.add_row(r["ref"], f"{r['experiment_ref']} {label}", r["task"], r["model"], str(r["seed"]),
                      r["status"] + (" (flagged)" if r["outcome"] else ""), str(r["attempt"]), f"{r['steps']:,}/{r['budget']:,} {r['budget_unit']}")
    out.print(table)


@runs_app.command("show", epilog="Examples:\n\n"
                                 "neurorl runs show r1\n"
                                 "neurorl runs show r1 --json")
def show(ref: str = typer.Argument(..., metavar="RUN", help="A run: r<id> (as `runs list` shows it) or a hash prefix."),
         as_json: bool = typer.Option(False, "--json", help="Machine-readable, with every installed package's version.")):
    """One run: config, status, checkpoints, best checkpoint per protocol, latest metrics."""
    from sqlmodel import Session

    from neurorl_cli.registry import queries
    from neurorl_cli.registry.models import Experiment
    from neurorl_cli.cli.app import out
    from neurorl_cli.cli.common import print_json, registry

    _, engine = registry()
    with Session(engine) as session:
        run = queries.run(session, ref)
        exp = session.get(Experiment, run.experiment_id)
        info = _run_row(run, exp)
        info["config"] = exp.config
        info["versions"] = run.versions
        info["checkpoints"] = [{"step": c.step, "path": c.path, "attempt": c.attempt} for c in queries.checkpoints(session, run.id)]
        info["best"] = {
            protocol: {"step": ck.step, "score": ev.score, "select": ev.select, "metrics": ev.metrics}
            for (_, protocol), (ev, ck) in queries.best_checkpoint(session, [run.id]).items()
        }
        latest: dict[str, tuple[int, float]] = {}
        for m, _, _ in queries.metrics(session, [run.id]):  # by key and step
            if m.attempt == run.attempt:
                latest[m.key] = (m.step, m.value)
        info["latest_metrics"] = {k: v for k, (_, v) in sorted(latest.items())}
    if as_json:
        print_json(info)
        return
    out.print(f"run {info['ref']} ({info['run_hash'][:12]}) of experiment {info['experiment_ref']} "
              f"{info['experiment_name'] or info['experiment_hash'][:12]}")
    out.print(f"  {info['task']} x {info['model']}, seed {info['seed']}, attempt {info['attempt']}")
    out.print(f"  status {info['status']}, {info['steps']:,}/{info['budget']:,} {info['budget_unit']}, device {info['device'] or '-'}, host {info['host'] or '-'}")
    if info["error"]:
        out.print(f"  error: {info['error']}")
    if info["outcome"]:
        out.print(f"  outcome: {info['outcome']}")
    out.print(f"  run dir {info['run_dir']}")
    group = (info["versions"] or {}).get("seed_group")
    if group:  # provenance: a grouped seed may differ from a solo one by float rounding
        out.print(f"  trained in one process with {len(group) - 1} other seed(s) of its experiment: "
                  + ", ".join(f"r{i}" for i in group))
    out.print(f"  checkpoints: {len(info['checkpoints'])}" + (
        f" (steps {info['checkpoints'][0]['step']:,} .. {info['checkpoints'][-1]['step']:,})" if info["checkpoints"] else ""))
    if info["best"]:
        for protocol, b in info["best"].items():
            out.print(f"  best under '{protocol}': step {b['step']:,}, {b['select']} {b['score']:.3f}")
    else:
        out.print(f"  no evaluation yet: neurorl eval {info['ref']} --all-checkpoints")
    for key in ("perf/trial_performance", "train/episode_reward", "train/steps_per_s"):
        if key in info["latest_metrics"]:
            out.print(f"  latest {key} = {info['latest_metrics'][key]:.4g}")


def _best_text(best: dict) -> str:
    if not best:
        return "not evaluated"
    protocol = "default" if "default" in best else sorted(best)[0]
    b = best[protocol]
    return f"best {b['select']} {b['score']:.3g} (run {b['run']} step {b['step']:,})"


@runs_app.command("matrix", epilog="Examples:\n\n"
                                   "neurorl runs matrix\n"
                                   "neurorl runs matrix --experiments --json")
def matrix(
    experiments: bool = typer.Option(False, "--experiments", help="One row per experiment (each config of a grid)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable cells."),
):
    """Task x model cells: seeds completed / running / failed, and the best evaluation score."""
    from sqlmodel import Session

    from neurorl_cli.registry import queries
    from neurorl_cli.cli.app import out
    from neurorl_cli.cli.common import print_json, registry

    _, engine = registry()
    with Session(engine) as session:
        cells = queries.matrix(session, by_experiment=experiments)
    if as_json:
        print_json(cells)
        return
    if not cells:
        out.print("no runs yet: `neurorl train TASK MODEL`")
        return
    if experiments:
        table = new_table("experiment", "task", "model", "overrides", "seeds", "completed", "running", "failed", "best")
        for c in cells:
            label = c["name"] or c["hash"][:12]
            overrides = ", ".join(f"{k}={v}" for k, v in sorted(c["overrides"].items())) or "-"
            table.add_row(f"{c['experiment']} {label}", c["task"], c["model"], overrides, str(c["seeds"]),
                          str(c["completed"]), str(c["running"]), str(c["failed"]), _best_text(c["best"]))
        out.print(table)
        return
    models = sorted({c["model"] for c in cells})
    table = new_table("task", *models, title="seeds completed / running / failed; best evaluation")
    for task in sorted({c["task"] for c in cells}):
        row = [task]
        for model in models:
            c = next((c for c in cells if c["task"] == task and c["model"] == model), None)
            row.append("" if c is None else f"{c['completed']} / {c['running']} / {c['failed']}\n{_best_text(c['best'])}")
        table.add_row(*row)
    out.print(table)


@runs_app.command("rm", epilog="Examples:\n\n"
                               "neurorl runs rm r3 r4\n"
                               "neurorl runs rm pdm --yes")
def remove(
    refs: list[str] = typer.Argument(..., metavar="RUN...", help="Runs (r<id> or hash prefixes); an experiment (e<id> or --name) removes all its runs."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    force: bool = typer.Option(False, "--force", help="Also runs still queued or running (their workers are not stopped)."),
):
    """Remove runs: their rows (metrics, checkpoints, evaluations) and their run directories."""
    from sqlmodel import Session

    from neurorl_cli.errors import UserError
    from neurorl_cli.registry.storage import human, plan_remove, remove_runs, runs_of
    from neurorl_cli.cli.app import out
    from neurorl_cli.cli.common import registry
    from neurorl_cli.cli.prune_cmd import confirm

    _, engine = registry()
    with Session(engine) as session:
        runs = runs_of(session, refs, prefer="run")
        session.expunge_all()
    active = [r.id for r in runs if r.status in ("queued", "running")]
    if active and not force:
        raise UserError(f"runs {', '.join(map(str, active))} are queued or running: stop them first, or add --force")
    plan = plan_remove(runs)
    out.print(f"removing {len(runs)} runs ({', '.join(f'r{r.id}' for r in runs)}) frees {human(plan.bytes)} "
              f"in {len(plan.folders)} run directories")
    for folder in plan.strangers:
        out.print(f"  {folder} does not look like a run directory: left in place")
    if not confirm("remove them?", yes):
        out.print("nothing removed")
        return
    remove_runs(engine, plan)
    out.print(f"removed {len(runs)} runs")


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
