"""Read-side questions to the registry: naming runs and experiments, best checkpoints."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case
from sqlmodel import Session, col, func, select

from ..errors import UserError
from .models import Checkpoint, Evaluation, Experiment, Run

MIN_PREFIX = 6  # hash prefixes shorter than this are too easy to collide


def _by_hash(session: Session, table, column, ref: str) -> list:
    if len(ref) < MIN_PREFIX or not all(c in "0123456789abcdef" for c in ref.lower()):
        return []
    return list(session.exec(select(table).where(col(column).startswith(ref.lower()))))


def find_experiment(session: Session, ref: str) -> Experiment | None:
    exp = session.exec(select(Experiment).where(Experiment.name == ref)).first()
    if exp is not None:
        return exp
    if ref.isdigit():
        return session.get(Experiment, int(ref))
    hits = _by_hash(session, Experiment, Experiment.config_hash, ref)
    if len(hits) > 1:
        raise UserError(f"'{ref}' matches {len(hits)} experiments: give more characters of the hash")
    return hits[0] if hits else None


def find_run(session: Session, ref: str) -> Run | None:
    if ref.isdigit():
        return session.get(Run, int(ref))
    hits = _by_hash(session, Run, Run.run_hash, ref)
    if len(hits) > 1:
        # --force makes several rows with one hash; the newest speaks for it.
        hits.sort(key=lambda r: r.id)
        return hits[-1]
    return hits[0] if hits else None


def run(session: Session, ref: str) -> Run:
    found = find_run(session, ref)
    if found is None:
        raise UserError(f"no run '{ref}': name a run by its id or a hash prefix (see `neurorl runs list`)")
    return found


def experiment(session: Session, ref: str) -> Experiment:
    found = find_experiment(session, ref)
    if found is None:
        raise UserError(
            f"no experiment '{ref}': name it by its id, --name or a hash prefix (see `neurorl runs list`)"
        )
    return found


@dataclass
class Target:
    """What `eval` and `report` act on: a whole experiment, or one of its runs."""

    experiment: Experiment
    runs: list[Run]


def target(session: Session, ref: str, prefer: str = "experiment") -> Target:
    """An experiment (all its runs) or a single run; integers name `prefer` first."""
    finders = [("experiment", find_experiment), ("run", find_run)]
    if prefer == "run":
        finders.reverse()
    for kind, finder in finders:
        found = finder(session, ref)
        if found is None:
            continue
        if kind == "experiment":
            runs = list(session.exec(select(Run).where(Run.experiment_id == found.id).order_by(Run.seed, Run.id)))
            return Target(found, runs)
        return Target(session.get(Experiment, found.experiment_id), [found])
    raise UserError(f"no run or experiment '{ref}': see `neurorl runs list`")


def latest_runs(runs: list[Run]) -> list[Run]:
    """One run per seed: the newest row (a --force run supersedes the older ones)."""
    newest: dict[int, Run] = {}
    for r in sorted(runs, key=lambda r: r.id):
        newest[r.seed] = r
    return [newest[s] for s in sorted(newest)]


def checkpoints(session: Session, run_id: int, pruned: bool = False) -> list[Checkpoint]:
    """A run's checkpoints by step; those whose file `prune` deleted only when asked."""
    query = select(Checkpoint).where(Checkpoint.run_id == run_id)
    if not pruned:
        query = query.where(col(Checkpoint.pruned).is_(None))
    return list(session.exec(query.order_by(Checkpoint.step)))


def best_checkpoint(session: Session, run_ids: list[int], protocol: str | None = None):
    """(Evaluation, Checkpoint) pairs with the best score per run and protocol."""
    ranking = case((col(Evaluation.higher_is_better), Evaluation.score), else_=-Evaluation.score)
    rows = session.exec(
        select(Evaluation, Checkpoint)
        .join(Checkpoint, Checkpoint.id == Evaluation.checkpoint_id)
        .where(col(Checkpoint.run_id).in_(run_ids))
        .order_by(Checkpoint.run_id, Evaluation.protocol, ranking.desc(), col(Checkpoint.step).desc())
    ).all()
    best: dict[tuple[int, str], tuple[Evaluation, Checkpoint]] = {}
    for ev, ck in rows:
        if protocol is not None and ev.protocol != protocol:
            continue
        best.setdefault((ck.run_id, ev.protocol), (ev, ck))
    return best


def run_counts(session: Session) -> dict[str, int]:
    return dict(session.exec(select(Run.status, func.count()).group_by(Run.status)).all())


RUNNING = ("queued", "running")
FAILED = ("failed", "crashed", "cancelled")


def matrix(session: Session, by_experiment: bool = False) -> list[dict]:
    """Task x model cells (or one per experiment): seeds completed / running / failed, best score.

    Each seed counts once, by its newest run; the best score is over every evaluated
    checkpoint of those runs, per protocol."""
    pairs = session.exec(select(Run, Experiment).join(Experiment, Experiment.id == Run.experiment_id)).all()
    by_exp: dict[int, list[Run]] = {}
    exps: dict[int, Experiment] = {}
    for run, exp in pairs:
        by_exp.setdefault(exp.id, []).append(run)
        exps[exp.id] = exp
    cells: dict[tuple, dict] = {}
    for exp_id, runs in sorted(by_exp.items()):
        exp = exps[exp_id]
        key = (exp.task, exp.model, exp_id) if by_experiment else (exp.task, exp.model)
        cell = cells.setdefault(key, {
            "task": exp.task, "model": exp.model, "experiments": [], "run_ids": [],
            "statuses": {}, "completed": 0, "running": 0, "failed": 0, "best": {},
        })
        if by_experiment:
            cell.update(experiment=exp.id, name=exp.name, hash=exp.config_hash,
                        overrides=exp.config.get("overrides", {}))
        cell["experiments"].append(exp_id)
        for run in latest_runs(runs):
            cell["run_ids"].append(run.id)
            cell["statuses"][run.status] = cell["statuses"].get(run.status, 0) + 1
            if run.status == "completed":
                cell["completed"] += 1
            elif run.status in RUNNING:
                cell["running"] += 1
            elif run.status in FAILED:
                cell["failed"] += 1
    for cell in cells.values():
        for (run_id, protocol), (ev, ck) in best_checkpoint(session, cell["run_ids"]).items():
            held = cell["best"].get(protocol)
            better = held is None or (ev.score > held["score"] if ev.higher_is_better else ev.score < held["score"])
            if better:
                cell["best"][protocol] = {"score": ev.score, "select": ev.select, "higher_is_better": ev.higher_is_better,
                                          "run": run_id, "step": ck.step}
        cell["seeds"] = len(cell.pop("run_ids"))
    return [cells[k] for k in sorted(cells, key=lambda k: tuple(str(x) for x in k))]
