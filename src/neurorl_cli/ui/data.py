"""The registry as the browser's JSON: experiments and runs to list, the task x model matrix,
an experiment's curves, checkpoint scores and watch GIF, and sweeps to compare.

Every read goes through registry/queries.py and api.py; nothing here writes. Names in and out
are the command line's (`e12`, `r34`, a --name, a hash prefix), so a page's URL is what a
command prints.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path

import numpy as np
from sqlmodel import Session

from neurorl_cli import plugins
from neurorl_cli.api import Registry
from neurorl_cli.catalog import in_protocol_order
from neurorl_cli.errors import UserError
from neurorl_cli.registry import queries
from neurorl_cli.registry.models import RUN_STATUSES, Experiment
from neurorl_cli.specs import budget_total
from neurorl_cli.ui.curves import seed_curves, within
from neurorl_cli.ui.downsample import MAX_POINTS

EXPERIMENT_SORTS = ("id", "name", "task", "model", "seeds", "completed", "running", "failed", "best", "created")
RUN_SORTS = ("id", "experiment", "task", "model", "seed", "status", "steps", "attempt", "created")


# ----------------------------------------------------------------------------- lists


def experiments(registry: Registry, task: str | None = None, model: str | None = None, status: str | None = None,
                tag: str | None = None, text: str | None = None, sort: str = "id", descending: bool = False) -> list[dict]:
    """One row per experiment: task, model, tags, seeds by status, best score, the overrides that
    make it; filtered (status: it has a seed in that status; text: in its name, task, model,
    tags or overrides) and sorted (rows without a value sort last)."""
    _check_choice("sort", sort, EXPERIMENT_SORTS)
    _check_status(status)
    with registry.session() as session:
        cells = queries.matrix(session, by_experiment=True)
        rows = []
        for cell in cells:
            exp = session.get(Experiment, cell["experiment"])
            best = _first_best(exp.config, cell["best"])
            rows.append({
                "id": exp.id, "ref": queries.exp_ref(exp), "name": exp.name, "hash": exp.config_hash,
                "task": exp.task, "model": exp.model, "tags": list(exp.tags), "overrides": cell["overrides"],
                "seeds": cell["seeds"], "completed": cell["completed"], "running": cell["running"],
                "failed": cell["failed"], "statuses": cell["statuses"], "created": exp.created.isoformat(),
                "best": best, "best_score": best["score"] if best else None,
            })
    rows = [r for r in rows if (task is None or r["task"] == task) and (model is None or r["model"] == model)
            and (status is None or status in r["statuses"]) and (tag is None or tag in r["tags"])
            and (not text or _mentions(r, text))]
    return _sorted(rows, "best_score" if sort == "best" else sort, descending)


def runs(registry: Registry, task: str | None = None, model: str | None = None, status: str | None = None,
         experiment: str | None = None, sort: str = "id", descending: bool = False) -> list[dict]:
    """One row per run (every attempt's row, as `runs list` shows them), filtered and sorted."""
    _check_choice("sort", sort, RUN_SORTS)
    _check_status(status)
    with registry.session() as session:
        only = None
        if experiment:
            only = {r.id for r in queries.target(session, experiment).runs}
        rows = []
        for run, exp in queries.runs_with_experiments(session, task, model, status):
            if only is not None and run.id not in only:
                continue
            unit, total = budget_total(exp.config)
            rows.append({
                "id": run.id, "ref": queries.run_ref(run), "experiment": exp.id, "experiment_ref": queries.exp_ref(exp),
                "experiment_name": exp.name, "task": exp.task, "model": exp.model, "tags": list(exp.tags),
                "seed": run.seed, "status": run.status, "outcome": run.outcome, "attempt": run.attempt,
                "steps": run.steps_done, "budget": total, "budget_unit": unit, "error": run.error,
                "created": run.created.isoformat(),
            })
    return _sorted(rows, sort, descending)


def matrix(registry: Registry) -> dict:
    """Task x model cells as `runs matrix` counts them, with the experiments of each cell."""
    with registry.session() as session:
        cells = queries.matrix(session)
        for cell in cells:
            config = session.get(Experiment, cell["experiments"][0]).config
            cell["best_first"] = _first_best(config, cell["best"])
            cell["experiment_refs"] = [queries.exp_ref(i) for i in cell["experiments"]]
    return {"tasks": sorted({c["task"] for c in cells}), "models": sorted({c["model"] for c in cells}), "cells": cells}


# ----------------------------------------------------------------------------- one experiment


def experiment(registry: Registry, ref: str) -> dict:
    """An experiment's header: config, runs (latest attempt per seed), metric keys, protocols."""
    with registry.session() as session:
        exp, runs_ = _target(session, ref)
        keys = queries.metric_keys(session, [r.id for r in runs_])
    family = plugins.family_of(exp.config)
    unit, total = budget_total(exp.config)
    shown = [k for k in (family.training_key, *family.more_training_keys) if k in keys]
    return {
        "ref": queries.exp_ref(exp), "id": exp.id, "name": exp.name, "hash": exp.config_hash, "task": exp.task,
        "model": exp.model, "tags": list(exp.tags), "config": exp.config, "overrides": exp.config.get("overrides", {}),
        "budget": total, "budget_unit": unit, "x_label": family.x_label or unit,
        "runs": [_run(r) for r in runs_], "keys": keys, "default_keys": shown or keys[:1],
        "protocols": list(exp.config["task"].get("protocols", {})),
        "live": any(r.status in queries.RUNNING for r in runs_), "version": _version(registry, runs_),
        "analyses_version": _version(registry, runs_, logs=False),
    }


def curves(registry: Registry, ref: str, key: str, limit: int = MAX_POINTS,
           x0: float | None = None, x1: float | None = None) -> dict:
    """One metric of an experiment's seeds: each seed downsampled, and their mean with a 95%
    interval on a common step grid; `version` changes whenever the runs log something.
    `x0`, `x1`: only the steps a zoomed chart shows, downsampled on their own."""
    with registry.session() as session:
        exp, runs_ = _target(session, ref)
        rows = queries.metrics(session, [r.id for r in runs_], key)
    series: dict[int, tuple[list, list]] = {}
    for metric, _, _ in rows:  # ordered by run and step, one row per step (the latest attempt's)
        steps, values = series.setdefault(metric.run_id, ([], []))
        steps.append(metric.step)
        values.append(metric.value)
    by_run = {r.id: r for r in runs_}
    data = seed_curves({_seed_label(by_run[i]): within(np.asarray(s), np.asarray(v), x0, x1) for i, (s, v) in series.items()}, limit)
    for entry, run_id in zip(data["seeds"], series):
        entry.update(run=queries.run_ref(run_id), status=by_run[run_id].status)
    return {"experiment": queries.exp_ref(exp), "key": key, **data, "live": any(r.status in queries.RUNNING for r in runs_),
            "version": _version(registry, runs_)}


def evaluations(registry: Registry, ref: str, limit: int = MAX_POINTS) -> dict:
    """Per protocol (in the task's order): each seed's score at every evaluated checkpoint, the
    mean over seeds with its 95% interval, and each seed's best checkpoint."""
    with registry.session() as session:
        exp, runs_ = _target(session, ref)
    run_ids = [r.id for r in runs_]
    evals = registry.evaluations(run_ids)
    best = registry.best_evaluations(run_ids)
    protocols = in_protocol_order(exp.config["task"], set(evals["protocol"])) if len(evals) else []
    out = []
    for name in protocols:
        rows = evals[evals["protocol"] == name]
        by_run = {r.id: r for r in runs_}
        series = {_seed_label(by_run[int(run_id)]): (g["step"].to_numpy(), g["score"].to_numpy())
                  for run_id, g in rows.sort_values("step").groupby("run_id", sort=True)}
        tops = best[best["protocol"] == name].sort_values("seed")
        out.append({
            "protocol": name, "select": rows["select"].iloc[0], "higher_is_better": bool(rows["higher_is_better"].iloc[0]),
            # Checkpoints of one experiment share their steps (checkpoint_every): the grid is exact.
            **seed_curves(series, limit),
            "best": [{"seed": int(t.seed), "run": f"r{int(t.run_id)}", "step": int(t.step), "score": float(t.score)}
                     for t in tops.itertuples()],
        })
    missing = None if protocols else f"neurorl eval {shlex.quote(queries.exp_ref(exp))} --all-checkpoints"
    return {"experiment": queries.exp_ref(exp), "protocols": out, "command": missing, "version": _version(registry, runs_)}


def watch(registry: Registry, ref: str) -> dict:
    """The watch GIF of the best checkpoint when one is stored, else the command that makes it."""
    with registry.session() as session:
        exp, runs_ = _target(session, ref)
        run_ids = [r.id for r in runs_]
        best = queries.best_checkpoint(session, run_ids)
        gifs = [a for a in queries.artifacts(session, exp.id, ("gif",)) if Path(a.path).is_file()]
    chosen = None
    if best:
        first = in_protocol_order(exp.config["task"], {p for _, p in best})[0]
        candidates = [(ev, ck) for (_, p), (ev, ck) in best.items() if p == first]
        ev, ck = max(candidates, key=lambda pair: pair[0].score if pair[0].higher_is_better else -pair[0].score)
        chosen = {"run": queries.run_ref(ck.run_id), "step": ck.step, "protocol": first, "select": ev.select, "score": ev.score}
    target = chosen["run"] if chosen else (queries.run_ref(runs_[0]) if runs_ else None)
    of_target = [a for a in gifs if target and a.run_id is not None and queries.run_ref(a.run_id) == target]
    stored = (of_target or gifs or [None])[0]
    command = None
    if target and (stored is None or not of_target):
        which = ["--checkpoint", "best", "--protocol", chosen["protocol"]] if chosen else ["--checkpoint", "latest"]
        command = shlex.join(["neurorl", "watch", target, *which, "--gif", f"watch-{target}.gif"])
    return {
        "experiment": queries.exp_ref(exp), "best": chosen,
        "gif": None if stored is None else {"artifact": stored.id, "run": queries.run_ref(stored.run_id) if stored.run_id else None,
                                           "made_by": stored.query, "of_best": bool(of_target)},
        "command": command,
        "note": None if chosen else "No checkpoint is evaluated yet: the best one is chosen by its evaluations.",
    }


def artifact_file(registry: Registry, artifact_id: int, kinds: tuple[str, ...]) -> Path:
    """The file of a recorded artifact of one of these kinds (the only files the server sends
    from the user's folders)."""
    from neurorl_cli.registry.models import Artifact

    with registry.session() as session:
        found = session.get(Artifact, artifact_id)
    if found is None or found.kind not in kinds or not Path(found.path).is_file():
        raise UserError(f"no stored file {artifact_id}")
    return Path(found.path)


# ----------------------------------------------------------------------------- compare


def compare(registry: Registry, refs: list[str], key: str | None = None, group_by: list[str] | None = None,
            limit: int = MAX_POINTS) -> dict:
    """Experiments side by side: the settings in which their configs differ, and one mean curve
    with its 95% interval per group of experiments sharing the values of `group_by` (default:
    every differing setting, so each experiment is its own group; fewer keys pool the seeds of
    the experiments that agree on them, as Aim's grouping does)."""
    if not refs:
        raise UserError("name the experiments to compare: ?experiments=e1,e2 (or a task and model)")
    with registry.session() as session:
        found = []
        for ref in refs:
            exp, runs_ = _target(session, ref)
            if all(e.id != exp.id for e, _ in found):
                found.append((exp, runs_))
        flat = {exp.id: _flatten({k: exp.config[k] for k in ("task", "model", "budget") if k in exp.config}) for exp, _ in found}
        differing = sorted(k for k in set().union(*flat.values()) if len({json.dumps(f.get(k), sort_keys=True) for f in flat.values()}) > 1)
        family = plugins.family_of(found[0][0].config)
        key = key or family.training_key
        groups_by = differing if group_by is None else [g for g in group_by if g]
        unknown = [g for g in groups_by if g not in differing]
        if unknown:
            raise UserError(f"group_by {', '.join(unknown)}: not a setting that differs here ({', '.join(differing) or 'none'})")
        groups: dict[str, dict] = {}
        for exp, runs_ in found:
            label = ", ".join(f"{k}={_short(flat[exp.id].get(k))}" for k in groups_by) or "all"
            group = groups.setdefault(label, {"label": label, "experiments": [], "series": {}})
            group["experiments"].append(queries.exp_ref(exp))
            for metric, seed, _ in queries.metrics(session, [r.id for r in runs_], key):
                steps, values = group["series"].setdefault(f"{queries.exp_ref(exp)} seed {seed}", ([], []))
                steps.append(metric.step)
                values.append(metric.value)
        best = {queries.exp_ref(exp): _first_best(exp.config, _best_of(session, exp, runs_)) for exp, _ in found}
        all_keys = queries.metric_keys(session, [r.id for _, rs in found for r in rs])
    out = []
    for group in groups.values():
        data = seed_curves({k: (np.asarray(s), np.asarray(v)) for k, (s, v) in group["series"].items()}, limit)
        out.append({"label": group["label"], "experiments": group["experiments"], "seeds": len(group["series"]),
                    "summary": data["summary"]})
    return {
        "key": key, "keys": all_keys, "differing": differing, "group_by": groups_by, "groups": out,
        "experiments": [{"ref": queries.exp_ref(exp), "name": exp.name, "task": exp.task, "model": exp.model,
                         "settings": {k: flat[exp.id].get(k) for k in differing}, "seeds": len(runs_),
                         "best": best[queries.exp_ref(exp)]} for exp, runs_ in found],
    }


def sweep_of(registry: Registry, task: str, model: str) -> list[str]:
    """The experiments of one task x model cell (a sweep of its settings), as refs."""
    return [r["ref"] for r in experiments(registry, task=task, model=model)]


# ----------------------------------------------------------------------------- helpers


def _target(session: Session, ref: str):
    found = queries.target(session, ref)
    return found.experiment, queries.latest_runs(found.runs)


def _seed_label(run) -> str:
    return f"seed {run.seed} ({queries.run_ref(run)})"


def _run(run) -> dict:
    return {"ref": queries.run_ref(run), "seed": run.seed, "status": run.status, "attempt": run.attempt,
            "steps": run.steps_done, "outcome": run.outcome, "error": run.error}


def _version(registry: Registry, runs_, logs: bool = True) -> str:
    """Changes whenever a run logs (unless `logs` is False), changes status, or gets an
    evaluation or a stored file: the page redraws then. The family's analyses read evaluations
    and the files a run writes when it ends, so they follow the version without logs."""
    evals = registry.evaluations([r.id for r in runs_])
    with registry.session() as session:
        stored = len(queries.artifacts(session, runs_[0].experiment_id)) if runs_ else 0
    parts = [(r.id, r.status, r.attempt) + ((r.steps_done, r.log_offset) if logs else ()) for r in runs_]
    parts += [len(evals), int(evals["evaluation_id"].max()) if len(evals) else 0, stored]
    return hashlib.blake2b(json.dumps(parts, default=str).encode(), digest_size=8).hexdigest()


def _best_of(session: Session, exp, runs_) -> dict:
    best: dict = {}
    for (run_id, protocol), (ev, ck) in queries.best_checkpoint(session, [r.id for r in runs_]).items():
        held = best.get(protocol)
        if held is None or (ev.score > held["score"] if ev.higher_is_better else ev.score < held["score"]):
            best[protocol] = {"score": ev.score, "select": ev.select, "higher_is_better": ev.higher_is_better,
                              "run": run_id, "step": ck.step}
    return best


def _first_best(config: dict, best: dict) -> dict | None:
    """The best score under the protocol the task names first (the one that picks checkpoints)."""
    if not best:
        return None
    protocol = in_protocol_order(config["task"], set(best))[0]
    return {"protocol": protocol, **best[protocol], "run": queries.run_ref(best[protocol]["run"])}


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        flat = {}
        for k, v in value.items():
            flat.update(_flatten(v, f"{prefix}{k}."))
        return flat
    return {prefix.rstrip("."): value}


def _short(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _mentions(row: dict, text: str) -> bool:
    words = [row["name"] or "", row["hash"], row["task"], row["model"], row["ref"], *row["tags"],
             *(f"{k}={v}" for k, v in row["overrides"].items())]
    return text.lower() in " ".join(map(str, words)).lower()


def _sorted(rows: list[dict], key: str, descending: bool) -> list[dict]:
    present = [r for r in rows if r.get(key) is not None]
    absent = [r for r in rows if r.get(key) is None]
    return sorted(present, key=lambda r: (r[key], r["id"]), reverse=descending) + absent


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"{what}={value}: one of {', '.join(choices)}")


def _check_status(status: str | None) -> None:
    if status is not None and status not in RUN_STATUSES:
        raise UserError(f"status={status}: one of {', '.join(RUN_STATUSES)}")

