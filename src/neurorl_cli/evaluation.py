"""Evaluate checkpoints under named protocols, into the registry.

`eval --all-checkpoints` fills in only the missing (checkpoint, protocol) cells of the
registry; the evaluation environments come from the protocol's own seed, so every checkpoint
of every run meets the same trials. Playing a checkpoint is rollouts.py's (no registry, no
console); this module decides what is missing and stores what comes back.
"""

from __future__ import annotations

from pathlib import Path

from rich.progress import Progress
from sqlalchemy import Engine
from sqlmodel import Session, select

from neurorl_cli import catalog, rollouts
from neurorl_cli.errors import UserError
from neurorl_cli.registry import queries
from neurorl_cli.registry.models import Evaluation, Trial
from neurorl_cli.rollouts import verify_checkpoint


def protocols_of(config: dict, names: list[str], trials: int | None) -> dict[str, tuple[dict, str]]:
    """Selected protocols of a task, with `--trials` applied, and each one's identity hash."""
    known = config["task"]["protocols"]
    for name in names:
        if name not in known:
            raise UserError(f"--protocol {name}: the task has {', '.join(known)}")
    out = {}
    for name in names or list(known):
        protocol = dict(known[name])
        if trials is not None:  # Doom protocols count whole episodes instead of trials
            protocol["episodes" if "episodes" in protocol else "trials"] = trials
        out[name] = (protocol, catalog.protocol_hash(catalog.task_environment(config["task"]), protocol))
    return out


def evaluate_all(engine: Engine, ref: str, names: list[str], trials: int | None, device: str, console) -> int:
    """Evaluate what is missing, showing progress and warnings on `console` (a rich Console);
    returns how many checkpoints were damaged or missing."""
    err = console

    with Session(engine) as session:
        target = queries.target(session, ref)
        config = target.experiment.config
        protocols = protocols_of(config, names, trials)
        todo, empty = [], []
        for run in target.runs:
            stored = queries.checkpoints(session, run.id)
            if not stored:
                empty.append(f"r{run.id} ({run.status})")
            for ck in stored:
                done = set(session.exec(select(Evaluation.protocol_hash).where(Evaluation.checkpoint_id == ck.id)))
                for name, (protocol, digest) in protocols.items():
                    if digest not in done:
                        todo.append((run.id, run.run_dir, ck.id, ck.step, ck.path, ck.sha256, name))
    if len(empty) == len(target.runs):
        raise UserError(f"nothing to evaluate: no checkpoint yet in {', '.join(empty)}; "
                        "see `neurorl runs show` for why, `neurorl train --resume RUN` to go on")
    if empty:
        err.print(f"[yellow]warning:[/] no checkpoint yet: {', '.join(empty)}; evaluating the other runs")
    if not todo:
        err.print(f"every checkpoint of '{ref}' is evaluated under {', '.join(protocols)} already")
        return 0
    files = _verified({cell[2]: cell[1:6] for cell in todo})  # each file checked once, for every protocol
    failures = 0
    with Progress(console=err, transient=False) as progress:
        bar = progress.add_task(f"evaluating {len(todo)} checkpoint x protocol cells", total=len(todo))
        for name, (protocol, digest) in protocols.items():
            cells = [cell for cell in todo if cell[-1] == name]
            for (run_id, _, ck_id, step, *_), result in _evaluated(config, protocol, cells, files, device):
                progress.advance(bar)
                if isinstance(result, Exception):  # a damaged file: report, skip, go on with the others
                    err.print(f"[yellow]warning:[/] run r{run_id} step {step}: {result}; skipped")
                    failures += 1
                    continue
                metrics, trials_done = result
                with Session(engine) as session:
                    ev = Evaluation(
                        checkpoint_id=ck_id, protocol=name, protocol_hash=digest, select=protocol["select"],
                        score=metrics[protocol["select"]], higher_is_better=protocol.get("mode", "max") == "max",
                        trials=int(metrics["trials"] if "trials" in metrics else protocol["trials"]), metrics=metrics,
                    )
                    session.add(ev)
                    session.flush()
                    session.add_all(Trial(evaluation_id=ev.id, **t) for t in trials_done)
                    session.commit()
    return failures


def _verified(checkpoints: dict[int, tuple]) -> dict[int, Path | Exception]:
    """Each checkpoint's file (by checkpoint id, from (run_dir, ck_id, step, path, sha256)), or
    why it cannot be used: missing, damaged, unreadable."""
    files: dict[int, Path | Exception] = {}
    for ck_id, (run_dir, _, _, path, sha) in checkpoints.items():
        try:
            files[ck_id] = verify_checkpoint(run_dir, path, sha)
        except (ValueError, OSError) as exc:
            files[ck_id] = exc
    return files


def _evaluated(config: dict, protocol: dict, cells: list[tuple], files: dict, device: str):
    """(cell, (metrics, trials) or the exception that stopped it) for each checkpoint cell."""
    ready = []
    for cell in cells:
        file = files[cell[2]]
        if isinstance(file, Exception):
            yield cell, file
        else:
            ready.append((cell, file))
    yield from rollouts.evaluate_each(config, protocol, ready, device)
