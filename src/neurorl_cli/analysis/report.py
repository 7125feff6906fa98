"""`neurorl report`: the figures of an experiment (or run, or task) and one HTML page.

Reads only the registry and the checkpoint files it points to. Trial panels run the best
checkpoint per protocol live (fixed seed, recurrent state carried); psychometric and
reaction-time curves use the stored trials of each seed's best checkpoint.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from neurorl_cli.api import Registry
from neurorl_cli.atomic import write_text
from neurorl_cli.catalog import budget_total, in_protocol_order
from neurorl_cli.errors import UserError
from neurorl_cli.registry import queries
from neurorl_cli.registry.models import Artifact, Checkpoint
from neurorl_cli.analysis import checkpoints, conditioning, firefly, html, metarl, methods, panels, psychometric, retinal, training
from neurorl_cli.analysis.figures import FigureFiles
from neurorl_cli.analysis.stats import bootstrap_ci

# The columns `api.Registry.evaluations` gives every protocol; the others are its own metrics.
EVALUATION_COLUMNS = ["evaluation_id", "experiment_id", "run_id", "seed", "checkpoint_id", "step", "protocol", "select", "score", "higher_is_better", "trials"]
PANEL_TRIALS = 8
PANEL_SEED = 0  # used when a protocol names no seed of its own


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


def _add_figure(section: html.Section, files: FigureFiles, caption: str, written: list[Path]) -> None:
    section.figure(files.png, caption, links=files.all())
    written.extend(files.all())


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

    family = family_of(config)
    # The methods name every evaluation stored, also those of protocols this report leaves out.
    evaluated_rows = registry.evaluations(run_ids).to_dict("records")
    sections = [html.Section("Methods").text(methods.methods_paragraph(config, [r.seed for r in runs], [r.versions for r in runs], evaluated_rows))]

    train = html.Section("Training")
    for key in (family.training_key, *family.more_training_keys):
        metrics = registry.metrics(run_ids, key=key)
        if len(metrics):
            stem = "training_curve" if key == family.training_key else f"training_{checkpoints.safe_name(key)}"
            files = training.training_curve(metrics, out, key=key, stem=stem, xlabel=family.x_label or budget_total(config)[0])
            _add_figure(train, files, f"{key} during training: seeds (thin), mean and 95% bootstrap interval over seeds.", written)
        else:
            train.notice(f"No {key} has been logged for these runs yet.")
    sections.append(train)

    evals = registry.evaluations(run_ids, protocol)
    if not len(evals):
        sections.append(
            html.Section("Evaluation").notice("No checkpoint has been evaluated yet; evaluate them with", f"neurorl eval {shlex.quote(ref)} --all-checkpoints")
        )
    evaluated = in_protocol_order(config["task"], set(evals["protocol"])) if len(evals) else []
    for name in evaluated:
        sections.extend(family.protocol_sections(registry, config, runs, evals, name, out, written))
    if evaluated:
        # The evaluated protocol the task names first selects the checkpoint to analyse (the
        # one `watch --checkpoint best` uses).
        sections.extend(family.best_sections(registry, config, runs, evals, evaluated[0], out, written))
    sections.extend(family.run_sections(config, runs, out, written))

    page = html.page(title, sections, footer=f"neurorl report; experiment {exp.config_hash}")
    index = out / "index.html"
    write_text(index, page)
    written.append(index)
    return Report(index, written, exp.id, runs[0].id if is_run else None)


def _protocol_sections(registry: Registry, config: dict, runs, evals: pd.DataFrame, name: str, out: Path, written: list[Path]) -> list[html.Section]:
    run_ids = [r.id for r in runs]
    section = html.Section(f"Evaluation: protocol {name}")
    _add_figure(section, checkpoints.checkpoint_curve(evals, out, name), f"Score of every evaluated checkpoint under {name}, per seed and mean.", written)
    best = registry.best_evaluations(run_ids, name)
    section.text("Best checkpoint of each seed:").table(checkpoints.best_table(best))
    sections = [section]

    sections.append(_panel_section(registry, config, runs, _top(best), name, out, written))

    if config["task"].get("kind") == "decision":
        sections.append(_decision_section(registry, run_ids, name, out, written))
    return sections


def _score_sections(registry: Registry, config: dict, runs, evals: pd.DataFrame, name: str, out: Path, written: list[Path]) -> list[html.Section]:
    """Checkpoint scores and the best checkpoints (conditioning predictors take no actions,
    so they get nothing more)."""
    section = html.Section(f"Evaluation: protocol {name}")
    _add_figure(section, checkpoints.checkpoint_curve(evals, out, name), f"Score of every evaluated checkpoint under {name}, per seed and mean.", written)
    best = registry.best_evaluations([r.id for r in runs], name)
    return [section.text("Best checkpoint of each seed:").table(checkpoints.best_table(best))]


def _metarl_protocol_sections(registry: Registry, config: dict, runs, evals: pd.DataFrame, name: str, out: Path, written: list[Path]) -> list[html.Section]:
    """Scores, then Harlow's accuracy by trial position or two-step's stay probabilities, and
    the LSTM state of one episode of the best checkpoint."""
    sections = _score_sections(registry, config, runs, evals, name, out, written)
    best = registry.best_evaluations([r.id for r in runs], name)
    section = html.Section(f"Behaviour ({name})")
    kind = config["task"]["kind"]
    stem = checkpoints.safe_name(name)
    if kind == "harlow":
        files = metarl.accuracy_over_training(evals, out, stem)
        _add_figure(section, files, f"Accuracy at each trial position of the episode at every evaluated checkpoint (mean over seeds, {name}). Meta-learning shows as trial 1 at chance and trials 2-6 rising together.", written)
        files = metarl.accuracy_by_position(best, out, stem)
        _add_figure(section, files, "Best checkpoint of each seed: accuracy by trial position. Dashed: the best agent that sees no objects and only counts which side paid off (sides are balanced 3/3), computed exactly.", written)
    else:
        files = metarl.stay_probabilities(best, out, stem)
        index = best["model_based_index"].mean()
        _add_figure(section, files, f"Probability of repeating the first-stage choice after rewarded / unrewarded trials with a common or rare transition (best checkpoint per seed, dots; {name}). Reward x transition interaction (model-based index) {index:+.3f}, reward main effect {best['reward_effect'].mean():+.3f}: a model-free agent repeats rewarded choices whatever the transition; a model-based one repeats after rewarded common and unrewarded rare transitions.", written)
    sections.append(section)
    sections.append(_state_section(registry, config, runs, _top(best), name, out, written))
    return sections


def _firefly_best_sections(registry: Registry, config: dict, runs, evals: pd.DataFrame, name: str, out: Path, written: list[Path]) -> list[html.Section]:
    """The best checkpoint's paths and the decoding of its recurrent state; the gain
    generalisation of each seed's best."""
    sections = []
    best = registry.best_evaluations([r.id for r in runs], name)
    section = html.Section(f"Behaviour and belief of the best checkpoint ({name})")
    try:
        run, ckpt, path = _best_file(registry, runs, _top(best))
    except ValueError as exc:
        return [section.notice(f"No analysis: {exc}.")]
    recording = firefly.record(config, path, config["task"]["protocols"][name])
    stem = checkpoints.safe_name(name)
    _add_figure(section, firefly.trajectories(recording, out, f"trajectories_{stem}"), f"Seed {run.seed}, checkpoint at {ckpt.step}: paths of 12 {name} trials seen from above (triangle: start, facing up; cross and disc: target and its {float(recording['goal_radius_cm']):.0f} cm reward zone; circle: the stop, filled when rewarded).", written)
    errors = firefly.decoding_errors(recording)
    if errors is None:
        section.notice("This agent keeps no recurrent state (its memory is the EKF): nothing to decode.")
    else:
        _add_figure(section, firefly.decoding_plot(errors, out, f"belief_decoding_{stem}"), f"Position relative to the target decoded linearly from the actor's LSTM state (fitted on half of {len(recording['target'])} trials, tested on the other half) beside the error of an EKF given the same observations and actions, per time step.", written)
    sections.append(section)
    chosen = set(best["checkpoint_id"])
    gains = firefly.gain_table(evals[evals["checkpoint_id"].isin(chosen)])
    if len(gains) and gains["gain"].nunique() >= 2:
        section = html.Section("Gain generalisation")
        _add_figure(section, firefly.gain_plot(gains, out, "gain_generalisation"), f"The checkpoint of each seed that is best under {name}, evaluated at joystick gains it never trained on (it trained at 1x).", written)
        sections.append(section)
    return sections


def _state_section(registry: Registry, config: dict, runs, top: pd.Series, name: str, out: Path, written: list[Path]) -> html.Section:
    section = html.Section(f"LSTM state over one episode ({name})")
    try:
        run, ckpt, policy = _load_best(registry, config, runs, top)
    except ValueError as exc:
        return section.notice(f"No state analysis: {exc}.")
    protocol = config["task"]["protocols"][name]
    episode = metarl.record_episode(policy, config["task"], int(protocol.get("seed", PANEL_SEED)), protocol.get("kwargs") or None)
    files = metarl.state_pca(episode, out, f"state_pca_{checkpoints.safe_name(name)}")
    if files is None:
        return section.notice("This policy exposes no recurrent state.")
    _add_figure(section, files, f"Seed {run.seed}, checkpoint at step {ckpt.step}: the LSTM hidden state at every step of one {name} episode, projected on its first two principal components and coloured by trial; circles and crosses mark correct and wrong choices.", written)
    return section


def _conditioning_run_sections(config: dict, runs, out: Path, written: list[Path]) -> list[html.Section]:
    """The first seed's predictors: value at each cue, TD errors over trials, and an animation."""
    run = runs[0]
    section = html.Section(f"Predictors of seed {run.seed} (run r{run.id})")
    try:
        sim = conditioning.load_simulation(run.run_dir)
    except FileNotFoundError:
        return [section.notice(f"Run {run.id} has no simulation yet (status {run.status}): it is written when the run completes.")]
    declared = config["task"].get("schedule", {}).get("trial_types", [])
    names = {i: f" ({t['name']})" for i, t in enumerate(declared) if t.get("name")}
    drawn = sorted({int(t) for t in sim["types"]})
    gamma_groups = len(conditioning.param_groups(sim["gamma"]))
    panel_by = "gamma" if 1 < gamma_groups <= conditioning.MAX_PANELS else None
    n, n_trials = sim["V"].shape[0], sim["V"].shape[1]
    picks = conditioning.predictors_by_tau(sim, 3)
    for i in drawn:
        cue = conditioning.cue_time(sim, i)
        label = f"trial type {i}{names.get(i, '')} ({int((sim['types'] == i).sum())} of {n_trials} trials)"
        files = conditioning.value_at_time(sim, i, cue, "tau", panel_by, out, f"value_at_cue_type{i}")
        split = f", one panel per gamma (values within {conditioning.PANEL_TOLERANCE} together)" if panel_by else ""
        _add_figure(section, files, f"Value at the cue ({cue:g} s) over the trials of {label}: {n} predictors coloured by their asymmetry tau{split}.", written)
        files = conditioning.td_heatmaps(sim, i, picks, out, f"td_heatmaps_type{i}")
        _add_figure(section, files, f"TD error over the trials of {label} and time within the trial, for the predictors of lowest, middle and highest tau.", written)
    gif = conditioning.value_animation(sim, drawn[0], out / "value_animation.gif", title=f"run r{run.id}")
    shown = len(conditioning.animation_trials(sim, drawn[0]))
    section.figure(gif, f"V(t) of every predictor (coloured by tau), reward r(t) and TD error, one frame per trial of trial type {drawn[0]} ({shown} frames).", links=[gif])
    written.append(gif)
    return [section]


def _nothing(*args) -> list[html.Section]:
    return []


@dataclass(frozen=True)
class Family:
    """What a report shows for one task family."""

    training_key: str
    x_label: str | None  # None: the budget's unit (trials or steps)
    protocol_sections: Callable  # (registry, config, runs, evals, protocol, out, written) -> sections
    # Once, after the protocols: analyses of the best checkpoint under the selecting protocol.
    best_sections: Callable = _nothing  # (registry, config, runs, evals, protocol, out, written) -> sections
    run_sections: Callable = _nothing  # (config, runs, out, written) -> sections of stored run files
    more_training_keys: tuple[str, ...] = ()  # further metrics plotted as training curves


def _best_file(registry: Registry, runs, top: pd.Series):
    """(run, checkpoint, verified path) of a best-evaluation row; ValueError when the file is missing or damaged."""
    from neurorl_cli.evaluation import verify_checkpoint

    run = next(r for r in runs if r.id == int(top["run_id"]))
    with registry.session() as session:
        ckpt = session.get(Checkpoint, int(top["checkpoint_id"]))
    return run, ckpt, verify_checkpoint(run.run_dir, ckpt.path, ckpt.sha256)


def _load_best(registry: Registry, config: dict, runs, top: pd.Series):
    """(run, checkpoint, policy) of a best-evaluation row; ValueError when its file is missing or damaged."""
    from neurorl_cli.backends.base import backend_for

    run, ckpt, path = _best_file(registry, runs, top)
    return run, ckpt, backend_for(config).load_policy(config, path, "cpu")


def _top(best: pd.DataFrame) -> pd.Series:
    """The best of the seeds' best evaluations (ties: the later checkpoint)."""
    higher = bool(best["higher_is_better"].iloc[0])
    return best.sort_values(["score", "step"], ascending=[not higher, False]).iloc[0]


def _panel_section(registry: Registry, config: dict, runs, top: pd.Series, name: str, out: Path, written: list[Path]) -> html.Section:
    section = html.Section(f"Trials of the best checkpoint ({name})")
    try:
        run, ckpt, policy = _load_best(registry, config, runs, top)
    except ValueError as exc:
        return section.notice(f"No trial panels: {exc}.")
    env_spec, seed = protocol_env(config, name)
    records = panels.record_trials(policy, env_spec, PANEL_TRIALS, seed)
    caption = (
        f"Seed {run.seed}, checkpoint at step {ckpt.step} ({top['select']} {top['score']:.3f}): observations, "
        f"actions against ground truth, rewards and per-trial performance over {PANEL_TRIALS} trials "
        f"(environment seed {seed}); grey lines mark trial ends. The recurrent state is carried throughout."
    )
    files = panels.trial_panels(records, out, panels.observation_names(env_spec), stem=f"trial_panels_{checkpoints.safe_name(name)}")
    _add_figure(section, files, caption, written)
    return section


def protocol_env(config: dict, name: str) -> tuple[dict, int]:
    """The environment a protocol evaluates on (its kwargs applied) and its seed."""
    env_spec = dict(config["task"]["env"])
    protocol = config["task"].get("protocols", {}).get(name, {})
    env_spec["kwargs"] = {**env_spec.get("kwargs", {}), **protocol.get("kwargs", {})}
    return env_spec, int(protocol.get("seed", PANEL_SEED))


def _decision_section(registry: Registry, run_ids: list[int], name: str, out: Path, written: list[Path]) -> html.Section:
    section = html.Section(f"Choices and reaction times ({name})")
    trials = registry.trials(run_ids, name, best=True)
    if not len(trials) or "coh" not in trials.columns:
        return section.notice("No stored trials with a coherence for the best checkpoints; re-run the evaluation to store them.")
    stem = checkpoints.safe_name(name)
    n = f"{len(trials)} trials of the best checkpoint of {trials['seed'].nunique()} seed(s)"
    _add_figure(section, psychometric.psychometric_curve(trials, out, f"psychometric_{stem}"), f"P(choose option 2) against coherence signed by the correct option; {n}.", written)
    _add_figure(section, psychometric.reaction_time_curve(trials, out, f"reaction_time_{stem}"), f"Reaction time from stimulus onset against coherence, correct and error trials; {n}.", written)
    return section


def _doom_protocol_sections(registry: Registry, config: dict, runs, evals: pd.DataFrame, name: str, out: Path, written: list[Path]) -> list[html.Section]:
    """Checkpoint scores and every metric the evaluation stored for each seed's best."""
    section = html.Section(f"Evaluation: protocol {name}")
    _add_figure(section, checkpoints.checkpoint_curve(evals, out, name), f"Score of every evaluated checkpoint under {name}, per seed and mean.", written)
    best = registry.best_evaluations([r.id for r in runs], name)
    # Every metric the evaluation stored (true reward, health gathered, items, episode length).
    stored = [c for c in best.columns if c not in EVALUATION_COLUMNS]
    shown = ["seed", "run_id", "step", "select", "score"] + ([] if "episodes" in stored else ["trials"])
    return [section.text("Best checkpoint of each seed:").table(best.sort_values("seed")[shown + stored].reset_index(drop=True))]


def _doom_best_sections(registry: Registry, config: dict, runs, evals: pd.DataFrame, name: str, out: Path, written: list[Path]) -> list[html.Section]:
    """The retinal analyses of the best checkpoint."""
    best = registry.best_evaluations([r.id for r in runs], name)
    try:
        run, ckpt, path = _best_file(registry, runs, _top(best))
    except ValueError as exc:
        return [html.Section("Analyses of the best checkpoint").notice(f"No analyses: {exc}.")]
    return retinal.doom_analysis_sections(registry, config, run, ckpt, path, out, written)


FAMILIES = {
    "neurogym": Family(training.TRAINING_KEY, "agent steps", _protocol_sections),
    "conditioning": Family(conditioning.TRAINING_KEY, "trials", _score_sections, run_sections=_conditioning_run_sections),
    "meta-rl": Family("train/episode_reward", None, _metarl_protocol_sections),
    "firefly": Family("perf/reward_rate", None, _score_sections, best_sections=_firefly_best_sections),
    # Training curves: the true (unshaped) reward, the shaped one the agent learns from, and FPS.
    "doom": Family(retinal.TRUE_REWARD_KEY, "agent steps", _doom_protocol_sections, best_sections=_doom_best_sections,
                   more_training_keys=(retinal.SHAPED_REWARD_KEY, retinal.FPS_KEY)),
}


def family_of(config: dict) -> Family:
    return FAMILIES[config["task"].get("family", "neurogym")]


def task_report(registry: Registry, task: str, out: Path | None = None, protocol: str | None = None) -> Report:
    """All experiments of one task: one training curve per experiment on shared axes."""
    experiments = registry.experiments(task=task)
    if not len(experiments):
        raise UserError(f"no experiments of task '{task}' in the registry (see `neurorl runs list`)")
    out = Path(out) if out else default_out(f"task-{task}")
    written: list[Path] = []
    metrics, rows, paragraphs = [], [], html.Section("Methods")
    family = family_of(experiments["config"].iloc[0])  # a task has one family
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
        _add_figure(compare, files, f"{key} during training: mean and 95% bootstrap interval over seeds, per experiment.", written)
    else:
        compare.notice("No training metrics logged yet.")
    scores = pd.concat(scores) if scores else pd.DataFrame()
    if len(scores):
        select = scores["select"].iloc[0]
        files = training.comparison_curve(scores, out, key="score", stem=f"comparison_{checkpoints.safe_name(scored)}",
                                          xlabel=budget_total(experiments["config"].iloc[0])[0])
        _add_figure(compare, files, f"{select} of every evaluated checkpoint under {scored}: mean and 95% bootstrap interval over seeds, per experiment.", written)
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
            session.add(Artifact(
                kind=kinds.get(path.suffix, "file"), path=str(path.resolve()), query=query,
                experiment_id=report.experiment_id, run_id=report.run_id,
            ))
        session.commit()
