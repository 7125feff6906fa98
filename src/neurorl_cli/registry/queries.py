"""Read-side questions to the registry: naming runs and experiments, best checkpoints."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import case
from sqlmodel import Session, col, func, select

from neurorl_cli.errors import UserError
from neurorl_cli.registry.models import Checkpoint, Evaluation, Experiment, Metric, Run

MIN_PREFIX = 6  # hash prefixes shorter than this are too easy to collide
ID = re.compile(r"^([er])([0-9]+)$")  # e12: experiment 12; r34: run 34
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
NAME_MAX = 100


def exp_ref(exp: Experiment | int) -> str:
    """How an experiment is named in print, as every command accepts it back: `e12`."""
    return f"e{exp if isinstance(exp, int) else exp.id}"


def run_ref(run: Run | int) -> str:
    """How a run is named in print, as every command accepts it back: `r34`."""
    return f"r{run if isinstance(run, int) else run.id}"


def check_name(name: str) -> str:
    """An experiment's --name, refused when it could be read as something else: an id, a hash
    prefix, a path (a report is written to a folder named after it)."""
    if not NAME.match(name) or len(name) > NAME_MAX:
        raise UserError(
            f"--name {name!r} is not a usable name: use 1-{NAME_MAX} letters, digits, '.', '_', '+' or '-', "
            "starting with a letter or digit (for example --name pdm-lstm64)")
    if ID.match(name) or name.isdigit() or _looks_like_hash(name):
        raise UserError(f"--name {name!r} looks like an id or a hash prefix: choose a name with a letter outside a-f, "
                        f"for example --name {name}-run")
    return name


def _looks_like_hash(ref: str) -> bool:
    return len(ref) >= MIN_PREFIX and all(c in "0123456789abcdef" for c in ref.lower())


def _by_hash(session: Session, table, column, ref: str) -> list:
    if not _looks_like_hash(ref):
        return []
    return list(session.exec(select(table).where(col(column).startswith(ref.lower()))))


def _bare_number(ref: str) -> UserError:
    return UserError(f"'{ref}' could be experiment e{ref} or run r{ref}: write e{ref} or r{ref} "
                     "(see `neurorl runs list`)")


def find_experiment(session: Session, ref: str) -> Experiment | None:
    if (m := ID.match(ref)) is not None:
        return session.get(Experiment, int(m[2])) if m[1] == "e" else None
    if ref.isdigit():
        raise _bare_number(ref)
    exp = session.exec(select(Experiment).where(Experiment.name == ref)).first()
    if exp is not None:
        return exp
    hits = _by_hash(session, Experiment, Experiment.config_hash, ref)
    if len(hits) > 1:
        raise UserError(f"'{ref}' matches {len(hits)} experiments: give more characters of the hash")
    return hits[0] if hits else None


def find_run(session: Session, ref: str) -> Run | None:
    if (m := ID.match(ref)) is not None:
        return session.get(Run, int(m[2])) if m[1] == "r" else None
    if ref.isdigit():
        raise _bare_number(ref)
    hits = _by_hash(session, Run, Run.run_hash, ref)
    if len(hits) > 1:
        # --force makes several rows with one hash; the newest speaks for it.
        hits.sort(key=lambda r: r.id)
        return hits[-1]
    return hits[0] if hits else None


def run(session: Session, ref: str) -> Run:
    found = find_run(session, ref)
    if found is None:
        if find_experiment(session, ref) is not None:
            raise UserError(f"'{ref}' is an experiment; this command takes one run: see its runs with "
                            f"`neurorl runs list` (ids r1, r2, ...)")
        raise UserError(f"no run '{ref}': name a run as r<id> or by a hash prefix (see `neurorl runs list`)")
    return found


def experiment(session: Session, ref: str) -> Experiment:
    found = find_experiment(session, ref)
    if found is None:
        raise UserError(
            f"no experiment '{ref}': name it as e<id>, by its --name or a hash prefix (see `neurorl runs list`)"
        )
    return found


@dataclass
class Target:
    """What `eval` and `report` act on: a whole experiment, or one of its runs."""

    experiment: Experiment
    runs: list[Run]


def target(session: Session, ref: str, prefer: str = "experiment") -> Target:
    """An experiment (all its runs) or a single run. `prefer` decides only for a hash prefix that
    matches both an experiment's hash and a run's."""
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
    raise UserError(f"no run or experiment '{ref}': name one as e<id>, r<id>, a --name or a hash prefix "
                    "(see `neurorl runs list`)")


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


def metrics(session: Session, run_ids: list[int] | None = None, key: str | None = None,
            superseded: bool = False) -> list[tuple[Metric, int, int]]:
    """Training metrics with their run's seed and experiment, by run, key and step.

    Each (run, key, step) once, from the latest attempt: rows a resumed attempt superseded
    (see ingest) come back only when asked, for audits of what a dead attempt logged."""
    query = (
        select(Metric, Run.seed, Run.experiment_id)
        .join(Run, Run.id == Metric.run_id)
        .order_by(Metric.run_id, Metric.key, Metric.step, Metric.attempt)
    )
    if run_ids is not None:
        query = query.where(col(Metric.run_id).in_(run_ids))
    if key is not None:
        query = query.where(Metric.key == key)
    if not superseded:
        query = query.where(col(Metric.superseded).is_(False))
    return list(session.exec(query).all())


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


def add_artifact(session: Session, kind: str, path, query: str, experiment_id: int | None = None,
                 run_id: int | None = None, once: bool = False) -> None:
    """Record a file neurorl wrote (it exists: it was renamed into place), with the command or query
    that made it; `once`: not again when the same kind and path are recorded already."""
    from neurorl_cli.registry.models import Artifact

    where = str(Path(path).resolve())
    if once and session.exec(select(Artifact).where(Artifact.kind == kind, Artifact.path == where)).first():
        return
    session.add(Artifact(kind=kind, path=where, query=query, experiment_id=experiment_id, run_id=run_id))


def runs_with_experiments(session: Session, task: str | None = None, model: str | None = None,
                          status: str | None = None) -> list[tuple[Run, Experiment]]:
    """Every run with its experiment, in run order, filtered by task, model and status."""
    query = select(Run, Experiment).join(Experiment, Experiment.id == Run.experiment_id).order_by(Run.id)
    if task:
        query = query.where(Experiment.task == task)
    if model:
        query = query.where(Experiment.model == model)
    if status:
        query = query.where(Run.status == status)
    return list(session.exec(query))


def metric_keys(session: Session, run_ids: list[int]) -> list[str]:
    """The metric keys these runs logged, sorted (what their curves can show)."""
    query = select(Metric.key).where(col(Metric.run_id).in_(run_ids)).distinct().order_by(Metric.key)
    return list(session.exec(query))


def artifacts(session: Session, experiment_id: int, kinds: tuple[str, ...] | None = None) -> list:
    """Files recorded for an experiment or one of its runs (report figures, watch GIFs), newest first."""
    from neurorl_cli.registry.models import Artifact

    runs = select(Run.id).where(Run.experiment_id == experiment_id)
    query = select(Artifact).where((Artifact.experiment_id == experiment_id) | col(Artifact.run_id).in_(runs))
    if kinds is not None:
        query = query.where(col(Artifact.kind).in_(kinds))
    return list(session.exec(query.order_by(col(Artifact.id).desc())))
