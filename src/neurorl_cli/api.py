"""The registry as pandas DataFrames, for notebooks, `report` and `export`.

    import neurorl_cli.api as nrl
    reg = nrl.open()
    reg.metrics(run="r3", key="perf/trial_performance")
    reg.trials("my-experiment", protocol="default", best=True)

Every question here is asked once, in SQL built with SQLModel; the commands reuse these
methods rather than writing their own queries. A reference (`ref`) is what the command line
accepts: `e12` (experiment 12), `r34` (run 34), an experiment's --name or a hash prefix
(see `queries.target`).
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from neurorl_cli.home import Home
from neurorl_cli.registry import queries
from neurorl_cli.registry.db import open_registry
from neurorl_cli.registry.models import Checkpoint, Evaluation, Experiment, Run, Trial

Ref = str | list[int] | None  # a command-line reference (e12, r34, a --name, a hash prefix), or run ids
TRIAL_COLUMNS = ["index", "env", "ground_truth", "choice", "correct", "reward", "reaction_time", "steps"]


def open(home: Home | None = None) -> Registry:  # noqa: A001 - `nrl.open()` reads naturally
    """The registry of `home` (default: the one `neurorl` itself would use)."""
    return Registry(open_registry(home))


class Registry:
    """Read-only views of the registry; each method returns a DataFrame."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def session(self) -> Session:
        return Session(self.engine)

    def run_ids(self, ref: Ref = None, prefer: str = "experiment") -> list[int] | None:
        """The runs a reference names (one per seed, newest row); None means every run.

        A list is taken as run ids already resolved (as `report` does once for all figures).
        """
        if ref is None:
            return None
        if isinstance(ref, list | tuple):
            return [int(i) for i in ref]
        with self.session() as session:
            found = queries.target(session, str(ref), prefer=prefer)
            return [r.id for r in queries.latest_runs(found.runs)]

    def experiments(self, task: str | None = None) -> pd.DataFrame:
        query = select(Experiment).order_by(Experiment.id)
        if task is not None:
            query = query.where(Experiment.task == task)
        with self.session() as session:
            rows = [
                {
                    "experiment_id": e.id, "name": e.name, "config_hash": e.config_hash, "task": e.task,
                    "model": e.model, "tags": e.tags, "created": e.created, "config": e.config,
                }
                for e in session.exec(query)
            ]
        return pd.DataFrame(rows, columns=["experiment_id", "name", "config_hash", "task", "model", "tags", "created", "config"])

    def runs(self, ref: Ref = None) -> pd.DataFrame:
        """Runs (all rows, or one per seed of what `ref` names) with their experiment's labels."""
        ids = self.run_ids(ref)
        query = select(Run, Experiment).join(Experiment, Experiment.id == Run.experiment_id).order_by(Run.id)
        if ids is not None:
            query = query.where(col(Run.id).in_(ids))
        with self.session() as session:
            rows = [
                {
                    "run_id": r.id, "experiment_id": e.id, "experiment": _label(e), "task": e.task,
                    "model": e.model, "seed": r.seed, "status": r.status, "attempt": r.attempt,
                    "steps_done": r.steps_done, "device": r.device, "run_dir": r.run_dir,
                    "versions": r.versions, "started": r.started, "ended": r.ended,
                }
                for r, e in session.exec(query)
            ]
        return pd.DataFrame(rows, columns=[
            "run_id", "experiment_id", "experiment", "task", "model", "seed", "status", "attempt",
            "steps_done", "device", "run_dir", "versions", "started", "ended",
        ])

    def metrics(self, run: Ref = None, key: str | None = None, prefer: str = "run",
                superseded: bool = False) -> pd.DataFrame:
        """Training metrics, each (run, key, step) once from the latest attempt; `superseded=True`
        adds what earlier attempts logged past a resume point (column `superseded`)."""
        ids = self.run_ids(run, prefer=prefer)
        columns = ["run_id", "experiment_id", "seed", "attempt", "key", "step", "value"]
        if superseded:
            columns.append("superseded")
        with self.session() as session:
            rows = [
                {"run_id": m.run_id, "experiment_id": exp, "seed": seed, "attempt": m.attempt,
                 "key": m.key, "step": m.step, "value": m.value, "superseded": m.superseded}
                for m, seed, exp in queries.metrics(session, ids, key, superseded)
            ]
        return pd.DataFrame(rows, columns=columns)

    def evaluations(self, experiment: Ref = None, protocol: str | None = None) -> pd.DataFrame:
        """One row per (checkpoint, protocol) evaluated; the protocol's metrics become columns."""
        ids = self.run_ids(experiment)
        query = (
            select(Evaluation, Checkpoint, Run)
            .join(Checkpoint, Checkpoint.id == Evaluation.checkpoint_id)
            .join(Run, Run.id == Checkpoint.run_id)
            .order_by(Run.id, Evaluation.protocol, Checkpoint.step)
        )
        if ids is not None:
            query = query.where(col(Run.id).in_(ids))
        if protocol is not None:
            query = query.where(Evaluation.protocol == protocol)
        base = ["evaluation_id", "experiment_id", "run_id", "seed", "checkpoint_id", "step", "protocol", "select", "score", "higher_is_better", "trials"]
        with self.session() as session:
            rows = []
            for ev, ck, run in session.exec(query):
                row = {
                    "evaluation_id": ev.id, "experiment_id": run.experiment_id, "run_id": run.id,
                    "seed": run.seed, "checkpoint_id": ck.id, "step": ck.step, "protocol": ev.protocol,
                    "select": ev.select, "score": ev.score, "higher_is_better": ev.higher_is_better, "trials": ev.trials,
                }
                row.update({k: v for k, v in ev.metrics.items() if k not in row})
                rows.append(row)
        frame = pd.DataFrame(rows)
        return frame if rows else pd.DataFrame(columns=base)

    def best_evaluations(self, ref: Ref, protocol: str | None = None) -> pd.DataFrame:
        """The best checkpoint's evaluation per run and protocol (rows of `evaluations`)."""
        ids = self.run_ids(ref) or []
        with self.session() as session:
            best_ids = {ev.id for ev, _ in queries.best_checkpoint(session, ids, protocol).values()}
        frame = self.evaluations(ref, protocol)
        return frame[frame["evaluation_id"].isin(best_ids)].reset_index(drop=True)

    def trials(
        self, run_or_experiment: Ref = None, protocol: str | None = None, best: bool = False
    ) -> pd.DataFrame:
        """Evaluated trials, with run, seed, checkpoint step and protocol; `conditions` expanded.

        `best=True` keeps only the trials of each run's best checkpoint per protocol.
        """
        if best:
            if run_or_experiment is None:
                raise ValueError("best=True needs a run or experiment")
            evals = self.best_evaluations(run_or_experiment, protocol)
        else:
            evals = self.evaluations(run_or_experiment, protocol)
        keys = ["evaluation_id", "run_id", "seed", "step", "protocol"]
        context = evals[keys].rename(columns={"step": "checkpoint_step"})
        ids = [int(i) for i in context["evaluation_id"]]
        with self.session() as session:
            rows = []
            for trial in session.exec(
                select(Trial).where(col(Trial.evaluation_id).in_(ids)).order_by(Trial.evaluation_id, Trial.index)
            ):
                row = {"evaluation_id": trial.evaluation_id, **{c: getattr(trial, c) for c in TRIAL_COLUMNS}}
                # A condition never overwrites a measured column (e.g. ground_truth as an action).
                row.update({f"cond_{k}" if k in row else k: v for k, v in trial.conditions.items()})
                rows.append(row)
        columns = ["evaluation_id", *TRIAL_COLUMNS]
        trials = pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)
        merged = context.merge(trials, on="evaluation_id", how="inner")
        ordered = ["run_id", "seed", "checkpoint_step", "protocol", "evaluation_id", *TRIAL_COLUMNS]
        return merged[ordered + [c for c in merged.columns if c not in ordered]]


def _label(experiment: Experiment) -> str:
    return experiment.name or experiment.config_hash[:12]
