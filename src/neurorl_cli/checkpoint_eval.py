"""`eval --all-checkpoints`: fill in the missing (checkpoint, protocol) cells of the registry.

The evaluation environments come from the protocol's own seed, so every checkpoint of every
run meets the same trials; a cell already stored is never computed again.
"""

from __future__ import annotations

from rich.progress import Progress
from sqlalchemy import Engine
from sqlmodel import Session, select

from . import catalog
from .errors import UserError
from .evaluation import verify_checkpoint
from .registry import queries
from .registry.models import Evaluation, Trial


def protocols_of(config: dict, names: list[str], trials: int | None) -> dict[str, tuple[dict, str]]:
    """Selected protocols of a task, with `--trials` applied, and each one's identity hash."""
    known = config["task"]["protocols"]
    for name in names:
        if name not in known:
            raise UserError(f"--protocol {name}: the task has {', '.join(known)}")
    out = {}
    for name in names or list(known):
        protocol = dict(known[name])
        if trials is not None:
            protocol["trials"] = trials
        out[name] = (protocol, catalog.protocol_hash(catalog.task_environment(config["task"]), protocol))
    return out


def evaluate_all(engine: Engine, ref: str, names: list[str], trials: int | None, device: str) -> int:
    """Evaluate what is missing; returns how many checkpoints were damaged or missing."""
    from .backends.base import backend_for
    from .cli.app import err

    with Session(engine) as session:
        target = queries.target(session, ref)
        config = target.experiment.config
        protocols = protocols_of(config, names, trials)
        todo = []
        for run in target.runs:
            for ck in queries.checkpoints(session, run.id):
                done = set(session.exec(select(Evaluation.protocol_hash).where(Evaluation.checkpoint_id == ck.id)))
                for name, (protocol, digest) in protocols.items():
                    if digest not in done:
                        todo.append((run.id, run.run_dir, ck.id, ck.step, ck.path, ck.sha256, name))
    if not todo:
        err.print(f"every checkpoint of '{ref}' is evaluated under {', '.join(protocols)} already")
        return 0
    backend = backend_for(config)
    failures = 0
    with Progress(console=err, transient=False) as progress:
        bar = progress.add_task(f"evaluating {len(todo)} checkpoint x protocol cells", total=len(todo))
        for run_id, run_dir, ck_id, step, path, sha, name in todo:
            protocol, digest = protocols[name]
            try:
                file = verify_checkpoint(run_dir, path, sha)
                metrics, trials_done = backend.evaluate(config, file, protocol, device)
            except Exception as exc:  # a damaged file: report, skip, go on with the others
                err.print(f"[yellow]warning:[/] run {run_id} step {step}: {exc}; skipped")
                failures += 1
                progress.advance(bar)
                continue
            with Session(engine) as session:
                ev = Evaluation(
                    checkpoint_id=ck_id, protocol=name, protocol_hash=digest, select=protocol["select"],
                    score=metrics[protocol["select"]], higher_is_better=protocol.get("mode", "max") == "max",
                    trials=int(metrics.get("trials", protocol["trials"])), metrics=metrics,
                )
                session.add(ev)
                session.flush()
                session.add_all(Trial(evaluation_id=ev.id, **t) for t in trials_done)
                session.commit()
            progress.advance(bar)
    return failures
