"""`neurorl report`: the figures of an experiment (or run, or task) and one HTML page.

Reads only the registry and the checkpoint files it points to. The page is assembled here
(methods, training curves, then what the task's family shows for each evaluated protocol, for
the best checkpoint, and from the runs' files); the family reads the runs only through the
ReportContext this module gives it.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from neurorl_cli import plugins
from neurorl_cli.analysis import checkpoints, html, training
from neurorl_cli.analysis.sections import add_figure
from neurorl_cli.analysis.stats import bootstrap_ci
from neurorl_cli.api import Registry
from neurorl_cli.atomic import write_text
from neurorl_cli.catalog import in_protocol_order
from neurorl_cli.errors import UserError
from neurorl_cli.interfaces import ReportContext
from neurorl_cli.registry import queries
from neurorl_cli.registry.models import Checkpoint
from neurorl_cli.report import methods
from neurorl_cli.rollouts import verify_checkpoint
from neurorl_cli.specs import budget_total


@dataclass
class Report:
    index: Path
    files: list[Path] = field(default_factory=list)
    experiment_id: int | None = None  # None for a report over a whole task
    run_id: int | None = None


def _label(experiment) -> str:
    return experiment.name or experiment.config_hash[:12]


def default_out(label: str) -> Path:
    return Path("report") / label


def experiment_report(registry: Registry, ref: str, out: Path | None = None, protocol: str | None = None) -> Report:
    with registry.session() as session:
        found = queries.target(session, ref)
        is_run = queries.find_experiment(session, ref) is None
        exp = found.experiment
        runs = queries.latest_runs(found.runs)
    label = _label(exp) + (f"-run{runs[0].id}" if is_run else "")
    out = Path(out) if out else default_out(label)
    config = exp.config
    protocols = list(config["task"].get("protocols", {}))
    if protocol is not None and protocol not in protocols:
        raise UserError(f"--protocol {protocol}: the task has protocols {', '.join(protocols) or 'none'}")
    run_ids = [r.id for r in runs]
    written: list[Path] = []
    title = f"{label}: {exp.task} / {exp.model}" + (f" (run {runs[0].id}, seed {runs[0].seed})" if is_run else "")

    family = plugins.family_of(config)
    # The methods name every evaluation stored, also those of protocols this report leaves out.
    evaluated_rows = registry.evaluations(run_ids).to_dict("records")
    sections = [html.Section("Methods").text(methods.methods_paragraph(config, [r.seed for r in runs], [r.versions for r in runs], evaluated_rows))]

    train = html.Section("Training")
    for key in (family.training_key, *family.more_training_keys):
        metrics = registry.metrics(run_ids, key=key)
        if len(metrics):
            stem = "training_curve" if key == family.training_key else f"training_{checkpoints.safe_name(key)}"
            files = training.training_curve(metrics, out, key=key, stem=stem, xlabel=family.x_label or budget_total(config)[0])
            add_figure(train, files, f"{key} during training: seeds (thin), mean and 95% bootstrap interval over seeds.", written)
        else:
            train.notice(f"No {key} has been logged for these runs yet.")
    sections.append(train)

    evals = registry.evaluations(run_ids, protocol)
    if not len(evals):
        sections.append(
            html.Section("Evaluation").notice("No checkpoint has been evaluated yet; evaluate them with", f"neurorl eval {shlex.quote(ref)} --all-checkpoints")
        )
    evaluated = in_protocol_order(config["task"], set(evals["protocol"])) if len(evals) else []
    ctx = report_context(registry, config, runs, evals, out, written)
    for _, sections_of in family_calls(family, ctx, evaluated):
        sections.extend(sections_of())

    page = html.page(title, sections, footer=f"neurorl report; experiment {exp.config_hash}")
    index = out / "index.html"
    write_text(index, page)
    written.append(index)
    return Report(index, written, exp.id, runs[0].id if is_run else None)


def family_calls(family, ctx: ReportContext, evaluated: list[str]) -> list[tuple[str, Callable[[], list]]]:
    """The calls that make the family's own sections, in the page's order, each named: every
    evaluated protocol's, the best checkpoint's, then those drawn from the runs' files. The
    browser view (ui/) makes the same calls through its own context."""
    calls = [(f"protocol_sections({name})", functools.partial(family.protocol_sections, ctx, name)) for name in evaluated]
    if evaluated:
        # The evaluated protocol the task names first selects the checkpoint to analyse (the
        # one `watch --checkpoint best` uses).
        calls.append((f"best_sections({evaluated[0]})", functools.partial(family.best_sections, ctx, evaluated[0])))
    calls.append(("run_sections", functools.partial(family.run_sections, ctx)))
    return calls


def report_context(registry: Registry, config: dict, runs, evals: pd.DataFrame, out: Path, written: list[Path]) -> ReportContext:
    """What a family's sections may read of these runs, with no door to the registry but this."""
    run_ids = [r.id for r in runs]
    engine = plugins.engine_of(config)

    def checkpoint_file(top: pd.Series):
        run = next(r for r in runs if r.id == int(top["run_id"]))
        with registry.session() as session:
            ckpt = session.get(Checkpoint, int(top["checkpoint_id"]))
        return run, ckpt, verify_checkpoint(run.run_dir, ckpt.path, ckpt.sha256)

    def register_file(path: Path, kind: str, query: str) -> None:
        with registry.session() as session:
            run = next((r for r in runs if Path(path).resolve().is_relative_to(Path(r.run_dir).resolve())), None)
            queries.add_artifact(session, kind, path, query, experiment_id=runs[0].experiment_id,
                                 run_id=run.id if run else None, once=True)
            session.commit()

    return ReportContext(
        config=config, runs=runs, evaluations=evals, out=out, written=written,
        best=lambda protocol: registry.best_evaluations(run_ids, protocol),
        trials=lambda protocol: registry.trials(run_ids, protocol, best=True),
        checkpoint_file=checkpoint_file,
        load_policy=lambda path: engine.load_policy(config, path, "cpu"),
        engine=engine, register_file=register_file,
    )


def task_report(registry: Registry, task: str, out: Path | None = None, protocol: str | None = None) -> Report:
    """All experiments of one task: one training curve per experiment on shared axes."""
    experiments = registry.experiments(task=task)
    if not len(experiments):
        raise UserError(f"no experiments of task '{task}' in the registry (see `neurorl runs list`)")
    out = Path(out) if out else default_out(f"task-{task}")
    written: list[Path] = []
    metrics, rows, paragraphs = [], [], html.Section("Methods")
    family = plugins.family_of(experiments["config"].iloc[0])  # a task has one family
    key = family.training_key
    # Scores of every checkpoint under one protocol (the given one, or the task's first, which
    # selects checkpoints), compared across experiments as curves over training.
    scored = protocol or next(iter(experiments["config"].iloc[0]["task"].get("protocols", {})), None)
    scores = []
    for exp in experiments.itertuples():
        label = f"{exp.model} ({exp.name or exp.config_hash[:12]})"
        run_ids = registry.run_ids(f"e{exp.experiment_id}")
        runs = registry.runs(run_ids)
        metrics.append(registry.metrics(run_ids, key=key).assign(label=label))
        if scored is not None:
            evaluated = registry.evaluations(run_ids, scored)
            scores.append(evaluated.assign(label=label, key="score", value=evaluated["score"], attempt=0))
        paragraphs.text(f"{label}: " + methods.methods_paragraph(exp.config, list(runs["seed"]), list(runs["versions"]),
                                                                 registry.evaluations(run_ids).to_dict("records")))
        best = registry.best_evaluations(run_ids, protocol)
        for proto, group in best.groupby("protocol"):
            mean, lo, hi = bootstrap_ci(group["score"].to_numpy())
            rows.append({"experiment": label, "protocol": proto, "select": group["select"].iloc[0], "seeds": len(group), "best score (mean)": mean, "95% CI low": lo, "95% CI high": hi})
        if best.empty:
            rows.append({"experiment": label, "protocol": "(not evaluated)", "seeds": len(runs)})
    compare = html.Section("Training")
    metrics = pd.concat(metrics)
    if len(metrics):
        files = training.comparison_curve(metrics, out, key=key, xlabel=family.x_label or budget_total(experiments["config"].iloc[0])[0])
        add_figure(compare, files, f"{key} during training: mean and 95% bootstrap interval over seeds, per experiment.", written)
    else:
        compare.notice("No training metrics logged yet.")
    scores = pd.concat(scores) if scores else pd.DataFrame()
    if len(scores):
        select = scores["select"].iloc[0]
        files = training.comparison_curve(scores, out, key="score", stem=f"comparison_{checkpoints.safe_name(scored)}",
                                          xlabel=budget_total(experiments["config"].iloc[0])[0])
        add_figure(compare, files, f"{select} of every evaluated checkpoint under {scored}: mean and 95% bootstrap interval over seeds, per experiment.", written)
    scores = html.Section("Best checkpoints").table(pd.DataFrame(rows))
    index = out / "index.html"
    write_text(index, html.page(f"Task {task}: {len(experiments)} experiment(s)", [compare, scores, paragraphs], footer="neurorl report --task"))
    written.append(index)
    return Report(index, written)


def record_artifacts(registry: Registry, report: Report, query: str) -> None:
    """One artifact row per file written (the files exist: each was renamed into place)."""
    kinds = {".html": "report-html", ".png": "figure-png", ".svg": "figure-svg", ".csv": "figure-csv", ".gif": "gif"}
    with registry.session() as session:
        for path in report.files:
            queries.add_artifact(session, kinds.get(path.suffix, "file"), path, query,
                                 experiment_id=report.experiment_id, run_id=report.run_id)
        session.commit()
