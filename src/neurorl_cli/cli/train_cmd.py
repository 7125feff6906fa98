"""`neurorl train`: register experiments and runs, then dispatch workers."""

from __future__ import annotations

import typer

from ..errors import Interrupted, UserError, WorkFailed


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        task: str = typer.Argument(None, help="Catalog task, neurogym:<Id>, or a task spec file."),
        model: str = typer.Argument(None, help="Catalog model or a model spec file."),
        seeds: str = typer.Option("0", "--seeds", help="Seeds: 0-4, 3 or 0,2,5."),
        set_: list[str] = typer.Option([], "--set", help="Override: section.key=value (bare commas make a grid)."),
        steps: int = typer.Option(None, "--steps", help="Budget in agent steps (default: the task's)."),
        trials: int = typer.Option(None, "--trials", help="Budget in trials, for tasks that count trials."),
        checkpoint_every: int = typer.Option(None, "--checkpoint-every", help="Checkpoint every N steps (or trials)."),
        device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
        jobs: int = typer.Option(1, "--jobs", help="Worker processes at once."),
        launcher: str = typer.Option("local", "--launcher", help="Where workers run."),
        resume: str = typer.Option(None, "--resume", help="Continue a crashed/cancelled/failed RUN from its last checkpoint."),
        force: bool = typer.Option(False, "--force", help="Train again even where a completed run exists (a new run row)."),
        name: str = typer.Option(None, "--name", help="A name for the experiment."),
        tag: list[str] = typer.Option([], "--tag", help="Labels for the experiment."),
    ):
        """Train TASK with MODEL for each seed; completed runs with the same config are not trained again."""
        from .. import catalog, training
        from ..launch.local import LocalDispatcher
        from .app import err, out
        from .common import registry

        if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
            raise UserError(f"--device {device}: use auto, cpu or cuda")
        if device.startswith("cuda"):
            from ..launch.local import gpu_count

            if gpu_count() == 0:
                raise UserError(f"--device {device}: no GPU is visible here (nvidia-smi finds none); use --device cpu or auto")
        if jobs < 1:
            raise UserError("--jobs must be at least 1")
        if launcher != "local":
            raise UserError(f"--launcher {launcher}: this version runs workers locally only (--launcher local)")
        if any(v is not None and v <= 0 for v in (steps, trials, checkpoint_every)):
            raise UserError("--steps, --trials and --checkpoint-every must be positive")
        seed_list = catalog.parse_seeds(seeds)

        if resume:
            if task or model:
                raise UserError("--resume RUN continues a stored run: give no TASK or MODEL")
            home, engine = registry()
            runs = [training.resume(engine, resume)]
        else:
            if not task or not model:
                raise UserError("give a TASK and a MODEL (see `neurorl tasks`, `neurorl models`), or --resume RUN")
            from ..home import find_home

            h = find_home()
            task_spec, model_spec = catalog.load_task(task, h), catalog.load_model(model, h)
            configs = catalog.resolve(task_spec, model_spec, set_, steps, checkpoint_every, trials)
            for config in configs:
                catalog.check_pair(config)  # before anything is stored
            home, engine = registry()
            plan = training.plan(engine, home, configs, seed_list, name, tag, force, launcher)
            for run in plan.skipped:
                out.print(f"run {run.id} (seed {run.seed}) completed already: not trained again (--force trains a new run)")
            runs = plan.to_train
            for exp in plan.experiments:
                label = f" '{exp.name}'" if exp.name else ""
                out.print(f"experiment {exp.id}{label} {exp.config_hash[:12]}: {exp.task} x {exp.model}")
        if not runs:
            return
        training.write_run_files(engine, runs, device, training.cpu_threads(min(jobs, len(runs))))
        totals = _totals(engine, runs)
        try:
            statuses = LocalDispatcher(engine, jobs, device, err).run(runs, totals)
        except KeyboardInterrupt:
            raise Interrupted(f"runs {', '.join(str(r.id) for r in runs)} marked cancelled; continue one with `neurorl train --resume RUN`") from None
        for run in runs:
            out.print(f"run {run.id} seed {run.seed}: {statuses[run.id]}  ({run.run_dir})")
        bad = [rid for rid, s in statuses.items() if s != "completed"]
        if bad:
            raise WorkFailed(f"{len(bad)} of {len(runs)} runs did not complete: see `neurorl runs show RUN`")


def _totals(engine, runs) -> dict[int, int]:
    from sqlmodel import Session

    from ..registry.models import Experiment

    from ..catalog import budget_total

    with Session(engine) as session:
        return {r.id: budget_total(session.get(Experiment, r.experiment_id).config)[1] for r in runs}
