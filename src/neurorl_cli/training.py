"""From resolved configs to queued runs: register experiments and runs, write run files.

Identity decides what is trained: the experiment is the config's hash; a seed whose run
completed is not trained again unless forced (`--force` adds a new run row); a queued run
left behind by an interrupted command is reused rather than duplicated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, select

from neurorl_cli import catalog
from neurorl_cli.interfaces import Engine as TrainingEngine, RunConfig
from neurorl_cli.plugins import engine_of
from neurorl_cli.specs import budget_total
from neurorl_cli.errors import UserError, WorkFailed
from neurorl_cli.home import Home
from neurorl_cli.registry import queries
from neurorl_cli.registry.models import Checkpoint, Experiment, Run
from neurorl_cli.runlog import write_run_file


@dataclass
class Plan:
    to_train: list[Run]
    skipped: list[Run]  # completed already
    experiments: list[Experiment]
    # A seed's unfinished run (running, or stopped before its end) beside which a new run was
    # made: `train` says so, since `--resume` would have gone on from its checkpoint.
    beside: list[Run]


def _experiment(session: Session, config: dict, name: str | None, tags: list[str]) -> Experiment:
    digest = catalog.experiment_hash(config)
    exp = session.exec(select(Experiment).where(Experiment.config_hash == digest)).first()
    if name:
        holder = session.exec(select(Experiment).where(Experiment.name == name)).first()
        if holder is not None and holder.config_hash != digest:
            raise UserError(f"--name {name} already names experiment {queries.exp_ref(holder)} with another config: "
                            "choose another name")
    if exp is None:
        exp = Experiment(
            config_hash=digest, task=config["task"]["name"], model=config["model"]["name"],
            config=config, name=name, tags=sorted(set(tags)),
        )
    else:
        if name and exp.name != name:
            exp.name = name
        if tags:
            exp.tags = sorted(set(exp.tags) | set(tags))
    session.add(exp)
    session.flush()
    return exp


def check_settings(config: dict) -> None:
    """Settings that the schemas let through but the training library refuses are refused here,
    by building the library's object (no training), before any experiment or run is stored."""
    engine = engine_of(config)
    if hasattr(engine, "check_settings"):
        engine.check_settings(config)


def budget_notice(config: dict) -> str | None:
    """What a user should know before training: the engine's own note on its budget
    (`budget_note`), or, for an engine that trains in whole updates (`budget_grain`), what the
    budget rounds up to; None when it trains the budget as given."""
    engine = engine_of(config)
    note = engine.budget_note(config) if hasattr(engine, "budget_note") else None
    if note:
        return f"{config['model']['name']}: {note}"
    grain = _grain(engine, config)
    unit, total = budget_total(config)
    trained = _whole_updates(total, grain)
    if trained == total:
        return None
    return (f"{config['model']['name']} trains in whole updates of {grain:,} {unit}: "
            f"the budget of {total:,} {unit} trains {trained:,}")


def trained_total(config: dict) -> int:
    """The steps (or trials) a run of `config` trains: its budget, rounded up to whole updates
    for an engine that trains in them."""
    return _whole_updates(budget_total(config)[1], _grain(engine_of(config), config))


def _grain(engine: TrainingEngine, config: dict) -> int | None:
    """The whole update an engine trains in (`budget_grain`, optional); None: any budget."""
    return engine.budget_grain(config) if hasattr(engine, "budget_grain") else None


def _whole_updates(total: int, grain: int | None) -> int:
    return -(-total // grain) * grain if grain else total


def plan(engine: Engine, home: Home, configs: list[dict], seeds: list[int], name: str | None,
         tags: list[str], force: bool, launcher: str) -> Plan:
    if name is not None:
        queries.check_name(name)
    if name and len(configs) > 1:
        raise UserError("--name labels one experiment, but --set made a grid: drop --name or the grid")
    to_train, skipped, experiments, beside = [], [], [], []
    with Session(engine) as session:
        for config in configs:
            exp = _experiment(session, config, name, tags)
            experiments.append(exp)
            for seed in seeds:
                existing = list(session.exec(
                    select(Run).where(Run.experiment_id == exp.id, Run.seed == seed).order_by(Run.id)
                ))
                done = [r for r in existing if r.status == "completed"]
                queued = [r for r in existing if r.status == "queued"]
                if done and not force:
                    skipped.append(done[-1])
                    continue
                if queued and not force:
                    run = queued[-1]
                else:
                    if existing and existing[-1].status in ("running", *RESUMABLE):
                        beside.append(existing[-1])
                    run = Run(
                        experiment_id=exp.id, seed=seed, run_hash=catalog.run_hash(config, seed),
                        launcher=launcher, run_dir="",
                    )
                    session.add(run)
                    session.flush()
                    run.run_dir = str(home.runs / f"{run.id:06d}-{run.run_hash[:10]}")
                run.launcher = launcher
                to_train.append(run)
        session.commit()
        for r in to_train + skipped + experiments + beside:
            session.refresh(r)
        session.expunge_all()
    return Plan(to_train, skipped, experiments, beside)


RESUMABLE = ("crashed", "failed", "cancelled")


def resume(engine: Engine, ref: str) -> list[Run]:
    """Queue a crashed, failed or cancelled run again as its next attempt, from its last
    checkpoint; given an experiment, each of its seeds' newest runs that is one of those (a seed
    group stopped by a crash or a cancel resumes together)."""
    with Session(engine) as session:
        exp = None if queries.find_run(session, ref) else queries.find_experiment(session, ref)
        runs = list(session.exec(select(Run).where(Run.experiment_id == exp.id))) if exp else []
    if exp is None:  # a run, or nothing (whose error names what a run ref looks like)
        return [_resume_run(engine, ref)]
    stopped = [r for r in queries.latest_runs(runs) if r.status in RESUMABLE]
    if not stopped:
        raise UserError(f"experiment {queries.exp_ref(exp)} has no crashed, failed or cancelled run to resume "
                        f"(see `neurorl runs list`)")
    return [_resume_run(engine, queries.run_ref(r)) for r in stopped]


def _resume_run(engine: Engine, run_ref: str) -> Run:
    with Session(engine) as session:
        run = queries.run(session, run_ref)
        if run.status in ("running", "queued"):
            raise UserError(f"run r{run.id} is {run.status}: only crashed, failed or cancelled runs resume")
        if run.status == "completed":
            raise UserError(f"run r{run.id} is completed already: use --force to train a new run")
        intact, unusable = resume_point(session, run)
        if intact is None and unusable:  # refused before anything changes, so it resumes once the file is restored
            raise WorkFailed(_no_intact_checkpoint(run, unusable))
        run.attempt += 1
        run.status = "queued"
        run.error = None
        run.ended = None
        run.heartbeat = None
        session.add(run)
        session.commit()
        session.refresh(run)
        session.expunge(run)
    return run


def resume_point(session: Session, run: Run) -> tuple[Checkpoint | None, list[str]]:
    """The newest registered checkpoint of `run` whose file is there with the sha256 the registry
    holds, and why each newer one cannot be used: a file changed since it was registered (on a
    shared file system, by anyone) is never resumed from."""
    from neurorl_cli.atomic import sha256

    unusable = []
    for ckpt in session.exec(
        select(Checkpoint).where(Checkpoint.run_id == run.id, Checkpoint.pruned == None).order_by(Checkpoint.step.desc())  # noqa: E711
    ):
        full = Path(run.run_dir) / ckpt.path
        if not full.is_file():
            unusable.append(f"checkpoint file {full} is missing")
        elif sha256(full) != ckpt.sha256:
            unusable.append(f"checkpoint file {full} differs from the one registered (sha256)")
        else:
            return ckpt, unusable
    return None, unusable


def _no_intact_checkpoint(run: Run, unusable: list[str]) -> str:
    older = f" (and {len(unusable) - 1} older)" if len(unusable) > 1 else ""
    return (f"run r{run.id}: no intact checkpoint to resume from: {unusable[0]}{older}; nothing was changed: "
            f"restore the file from a copy, or train seed {run.seed} anew (`neurorl train` with --force)")


def seed_groups(engine: Engine, runs: list[Run], per_worker: int | None, jobs: int, device: str) -> list[list[Run]]:
    """The runs each worker process trains: seeds of one experiment together, up to `per_worker`
    of them, or by default as many as the model trains at once on `device` spread over `jobs`
    workers (a model that trains one seed at a time: one run per worker)."""
    by_experiment: dict[int, list[Run]] = {}
    for run in runs:
        by_experiment.setdefault(run.experiment_id, []).append(run)
    groups = []
    with Session(engine) as session:
        for exp_id, members in by_experiment.items():
            config = session.get(Experiment, exp_id).config
            size = engine_of(config).group_size(config, device, per_worker)
            # the default spreads the seeds over the --jobs workers
            groups += cut_seeds(members, size, None if per_worker else jobs)
    return groups


def cut_seeds(members: list, size: int, workers: int | None = None) -> list[list]:
    """Consecutive seeds, `size` to a group; spread over `workers`, at most ceil(len / workers)."""
    if workers:
        size = min(size, -(-len(members) // workers))
    return [members[i:i + size] for i in range(0, len(members), max(size, 1))]


def write_run_files(engine: Engine, runs: list[Run], device: str, threads: int | None,
                    provenance: dict | None = None, launcher: str | None = None, warn=None,
                    groups: list[list[Run]] = ()) -> None:
    """The run file is all a worker reads: the config, its seed and attempt, where to resume.

    `provenance` (what launched the runs: neurorl, git commit, container) starts each run's
    `versions`; the worker's side is merged over it when its start is ingested. A later attempt
    resumes from the newest intact checkpoint; `warn` hears of each newer one passed over."""
    group_of = {run.id: [r.id for r in group] for group in groups if len(group) > 1 for run in group}
    with Session(engine) as session:
        for run in runs:
            row = session.get(Run, run.id)
            if provenance is not None:
                row.versions = provenance
            if launcher is not None:
                row.launcher = run.launcher = launcher
            row.job_id = run.job_id = None  # a new attempt gets a new job
            session.add(row)
            exp = session.get(Experiment, run.experiment_id)
            resume_from = None
            if run.attempt > 1:
                last, unusable = resume_point(session, row)
                if last is None and unusable:
                    raise WorkFailed(_no_intact_checkpoint(row, unusable))
                for why in unusable if warn else []:
                    warn(f"run r{run.id}: {why}; resuming from step {last.step} instead")
                if last is not None:
                    resume_from = str(Path(run.run_dir) / last.path)
            Path(run.run_dir).mkdir(parents=True, exist_ok=True)
            spec = RunConfig(
                run_id=run.id, seed=run.seed, attempt=run.attempt, config=exp.config,
                run_dir=run.run_dir, device=device, resume_from=resume_from, threads=threads,
                group=group_of.get(run.id),
            )
            write_run_file(Path(run.run_dir), spec.to_json())
        session.commit()


def cpu_threads(jobs: int) -> int | None:
    """Share the cores between parallel workers; one worker keeps the library default."""
    if jobs <= 1:
        return None
    return max(1, (os.cpu_count() or 1) // jobs)
