"""`neurorl train`: register experiments and runs, then dispatch workers."""

from __future__ import annotations

from pathlib import Path

import typer

from neurorl_cli.cli import completion
from neurorl_cli.errors import Interrupted, UserError, WorkFailed

LAUNCHERS = ("local", "slurm", "submitit-local")


def register(app: typer.Typer) -> None:
    @app.command(epilog="Examples:\n\n"
                        "neurorl train perceptual-decision-making ppo --seeds 0-2 --name pdm\n"
                        "neurorl train harlow meta-a2c-lstm --trials 60000 --checkpoint-every 20000\n"
                        "neurorl train go-no-go ppo --set model.learning_rate=1e-4,3e-4\n"
                        "neurorl train go-no-go ppo --set 'model.net_arch=[128,128]'\n"
                        "neurorl train doom-basic retinal-simple --steps 200000 --seeds 0-1 --jobs 2\n"
                        "neurorl train firefly td3-modular --seeds 0-15 --seeds-per-worker 8 --jobs 2\n"
                        "neurorl train --resume r3\n"
                        "neurorl train --resume e2")
    def train(
        task: str = typer.Argument(None, metavar="TASK", autocompletion=completion.tasks, help="Catalog task, neurogym:<Id>, or a task spec file."),
        model: str = typer.Argument(None, metavar="MODEL", autocompletion=completion.models, help="Catalog model or a model spec file."),
        seeds: str = typer.Option("0", "--seeds", metavar="SEEDS", help="Seeds: 0-4, 3 or 0,2,5."),
        set_: list[str] = typer.Option([], "--set", metavar="K=V", help="Override: section.key=value (bare commas make a grid)."),
        steps: int = typer.Option(None, "--steps", metavar="N", help="Budget in agent steps (default: the task's)."),
        trials: int = typer.Option(None, "--trials", metavar="N", help="Budget in trials, for tasks that count trials."),
        checkpoint_every: int = typer.Option(None, "--checkpoint-every", metavar="N", help="Checkpoint every N steps (or trials)."),
        device: str = typer.Option("auto", "--device", metavar="DEVICE", help="auto, cpu or cuda."),
        jobs: int = typer.Option(1, "--jobs", metavar="N", help="Worker processes at once (local and submitit-local)."),
        seeds_per_worker: int = typer.Option(None, "--seeds-per-worker", metavar="N", help="Seeds one worker process trains together, for models that batch seeds (default: up to 16 on a CPU, 64 on a GPU, spread over --jobs)."),
        launcher: str = typer.Option("local", "--launcher", metavar="LAUNCHER", help="local, slurm, or submitit-local (the Slurm code path on this machine)."),
        resume: str = typer.Option(None, "--resume", metavar="RUN", help="Continue a crashed/cancelled/failed RUN from its last checkpoint (an experiment: each such run of it)."),
        force: bool = typer.Option(False, "--force", help="Train again even where a completed run exists (a new run row)."),
        name: str = typer.Option(None, "--name", metavar="NAME", help="A name for the experiment."),
        tag: list[str] = typer.Option([], "--tag", metavar="TAG", help="Labels for the experiment."),
        profile: Path = typer.Option(None, "--profile", metavar="FILE", help="Cluster resources from a TOML file (default: $NEURORL_HOME/slurm.toml)."),
        partition: str = typer.Option(None, "--partition", metavar="NAME", help="Slurm partition."),
        time_: str = typer.Option(None, "--time", metavar="TIME", help="Time limit per job: minutes or HH:MM:SS (default 4 h); near it a job checkpoints and is requeued."),
        gpus: int = typer.Option(None, "--gpus", metavar="N", help="GPUs per job."),
        cpus: int = typer.Option(None, "--cpus", metavar="N", help="CPUs per job."),
        mem: str = typer.Option(None, "--mem", metavar="SIZE", help="Memory per job: 16G, 512M."),
        array_parallelism: int = typer.Option(None, "--array-parallelism", metavar="N", help="Jobs of the Slurm array running at once."),
        container: str = typer.Option(None, "--container", metavar="FILE", help="Run each worker in this Apptainer image (apptainer exec --nv)."),
        wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait with progress (default), or submit and return (slurm, submitit-local)."),
    ):
        """Train TASK with MODEL for each seed; completed runs with the same config are not trained again."""
        from neurorl_cli import catalog, training
        from neurorl_cli.cli.app import err, out
        from neurorl_cli.cli.common import _warn, registry

        if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
            raise UserError(f"--device {device}: use auto, cpu or cuda")
        if launcher not in LAUNCHERS:
            raise UserError(f"--launcher {launcher}: use {', '.join(LAUNCHERS)}")
        cluster_options = dict(partition=partition, time=time_, gpus=gpus, cpus=cpus, mem=mem,
                               array_parallelism=array_parallelism, container=container)
        if launcher == "local":
            given = [f"--{k.replace('_', '-')}" for k, v in cluster_options.items() if v is not None]
            if profile is not None:
                given.append("--profile")
            if not wait:
                given.append("--no-wait")
            if given:
                raise UserError(f"{', '.join(given)} apply to --launcher slurm or submitit-local, not local")
        if device.startswith("cuda") and launcher != "slurm":
            from neurorl_cli.launch.local import gpu_count

            if gpu_count() == 0:
                raise UserError(f"--device {device}: no GPU is visible here (nvidia-smi finds none); use --device cpu or auto")
        if jobs < 1:
            raise UserError("--jobs must be at least 1")
        if seeds_per_worker is not None and seeds_per_worker < 1:
            raise UserError("--seeds-per-worker must be at least 1")
        if any(v is not None and v <= 0 for v in (steps, trials, checkpoint_every)):
            raise UserError("--steps, --trials and --checkpoint-every must be positive")
        seed_list = catalog.parse_seeds(seeds)

        from neurorl_cli.home import find_home

        h = find_home()
        res, digest = None, None
        if launcher != "local":
            res, digest = _cluster(h, launcher, profile, cluster_options)

        if resume:
            if task or model:
                raise UserError("--resume RUN continues a stored run: give no TASK or MODEL")
            home, engine = registry()
            runs = training.resume(engine, resume)
        else:
            if not task or not model:
                raise UserError("give a TASK and a MODEL (see `neurorl tasks`, `neurorl models`), or --resume RUN")
            task_spec, model_spec = catalog.load_task(task, h), catalog.load_model(model, h)
            configs = catalog.resolve(task_spec, model_spec, set_, steps, checkpoint_every, trials)
            for config in configs:
                catalog.check_pair(config)  # before anything is stored
                training.check_settings(config)
            from neurorl_cli.training import budget_notice

            for note in dict.fromkeys(filter(None, map(budget_notice, configs))):
                err.print(f"note: {note}")
            home, engine = registry()
            plan = training.plan(engine, home, configs, seed_list, name, tag, force, launcher)
            for run in plan.skipped:
                out.print(f"run r{run.id} (seed {run.seed}) completed already: not trained again (--force trains a new run)")
            for run in plan.beside:
                instead = ("" if run.status == "running" else
                           f"; to continue it from its last checkpoint instead: neurorl train --resume r{run.id}")
                err.print(f"note: seed {run.seed} already has run r{run.id} ({run.status}): a new run of it trains now{instead}")
            runs = plan.to_train
            for exp in plan.experiments:
                label = f" '{exp.name}'" if exp.name else ""
                out.print(f"experiment e{exp.id}{label} {exp.config_hash[:12]}: {exp.task} x {exp.model}")
        if not runs:
            return
        from neurorl_cli.provenance import launch_side

        container_info = {"image": str(Path(res.container).resolve()), "digest": digest} if res and res.container else None
        provenance = launch_side(Path.cwd(), container_info)
        groups = _groups(engine, runs, seeds_per_worker, jobs, device, launcher)
        threads = training.cpu_threads(min(jobs, len(groups))) if launcher != "slurm" else None
        training.write_run_files(engine, runs, device, threads, provenance=provenance, launcher=launcher, warn=_warn,
                                 groups=groups)
        totals = _totals(engine, runs)
        try:
            if launcher == "local":
                from neurorl_cli.launch.local import LocalDispatcher

                statuses = LocalDispatcher(engine, jobs, device, err).run(groups, totals)
            else:
                from neurorl_cli.launch.slurm import SubmititDispatcher

                cluster = "slurm" if launcher == "slurm" else "local"
                dispatcher = SubmititDispatcher(engine, cluster, res, device, err, home.runs / ".submitit",
                                                jobs=jobs, digest=digest)
                statuses = dispatcher.run(groups, totals, wait=wait)
        except KeyboardInterrupt:
            raise Interrupted(f"runs {', '.join(f'r{r.id}' for r in runs)} marked cancelled; continue one with `neurorl train --resume RUN`") from None
        if not wait:
            for run in runs:
                out.print(f"run r{run.id} seed {run.seed}: submitted as job {_job_id(engine, run.id)}  ({run.run_dir})")
            out.print("follow them with `neurorl runs list` (it ingests their run logs)")
            return
        for run in runs:
            out.print(f"run r{run.id} seed {run.seed}: {statuses[run.id]}  ({run.run_dir})")
        bad = [run for run in runs if statuses[run.id] != "completed"]
        whys = [_why(engine, run, statuses[run.id], alone=len(bad) == 1) for run in bad]
        if len(bad) == 1:
            raise WorkFailed(whys[0])
        if bad:
            for why in whys:
                err.print(why)
            raise WorkFailed(f"{len(bad)} of {len(runs)} runs did not complete (above)")


def _groups(engine, runs, per_worker: int | None, jobs: int, device: str, launcher: str):
    """Which runs share a worker process; an explicit --seeds-per-worker the model cannot honour is
    refused before anything starts."""
    from neurorl_cli import training

    if device == "auto" and launcher != "slurm":
        from neurorl_cli.launch.local import gpu_count

        device = "cuda" if gpu_count() else "cpu"
    # On Slurm each group is an array task of its own: --jobs does not spread them.
    groups = training.seed_groups(engine, runs, per_worker, 1 if launcher == "slurm" else jobs, device)
    if per_worker and per_worker > 1 and len(runs) > 1 and all(len(g) == 1 for g in groups):
        from neurorl_cli.cli.common import _warn

        _warn(f"--seeds-per-worker {per_worker}: this model trains one seed per worker process; each seed gets its own")
    return groups


def _cluster(home, launcher: str, profile: Path | None, options: dict):
    """Resources for a submitit launcher, checked before anything is stored."""
    import shutil

    from neurorl_cli.launch.profile import resources

    res = resources(home, profile, **options)
    if launcher == "slurm" and shutil.which("sbatch") is None:
        raise UserError("--launcher slurm: sbatch is not on PATH here; run neurorl on a Slurm login node, "
                        "or use --launcher submitit-local to run the same jobs on this machine")
    digest = None
    if res.container:
        image = Path(res.container).expanduser()
        if not image.is_file():
            raise UserError(f"--container {res.container}: no such image file (build one from apptainer.def)")
        from neurorl_cli.provenance import file_digest

        digest = file_digest(image, home.root / "cache" / "image-digests.json")
        res.container = str(image.resolve())
    return res, digest


def _why(engine, run, status: str, alone: bool) -> str:
    """One line on a run that did not complete: the error its worker recorded, and where the rest is.
    Alone it is the `failed:` line itself, which need not say `failed` twice."""
    with engine.connect() as conn:
        error = conn.exec_driver_sql("SELECT error FROM run WHERE id = ?", (run.id,)).scalar()
        conn.rollback()
    from neurorl_cli.launch.local import WORKER_LOG

    error = " ".join((error or "no error was recorded").split())
    log = Path(run.run_dir) / WORKER_LOG
    more = f"traceback in {log}" if log.is_file() else f"`neurorl runs show r{run.id}`"
    said = "" if alone and status == "failed" else f" {status}"
    return f"run r{run.id}{said}: {error[:500]} ({more})"


def _job_id(engine, run_id: int) -> str:
    with engine.connect() as conn:
        value = conn.exec_driver_sql("SELECT job_id FROM run WHERE id = ?", (run_id,)).scalar()
        conn.rollback()
    return value or "-"


def _totals(engine, runs) -> dict[int, int]:
    from sqlmodel import Session

    from neurorl_cli.registry.models import Experiment
    from neurorl_cli.training import trained_total

    with Session(engine) as session:
        return {r.id: trained_total(session.get(Experiment, r.experiment_id).config) for r in runs}
