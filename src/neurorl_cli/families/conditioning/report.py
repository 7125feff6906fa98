"""The conditioning family's report: each predictor's value at the cue and TD errors over the
trials of the first seed, an animation of V(t); and the methods' sentence on the schedule."""

from __future__ import annotations

from neurorl_cli.analysis import html
from neurorl_cli.analysis.prose import plural
from neurorl_cli.analysis.sections import add_figure
from neurorl_cli.families.conditioning import analysis


def run_sections(ctx) -> list[html.Section]:
    """The first seed's predictors: value at each cue, TD errors over trials, and an animation."""
    config, out, written = ctx.config, ctx.out, ctx.written
    run = ctx.runs[0]
    section = html.Section(f"Predictors of seed {run.seed} (run r{run.id})")
    try:
        sim = analysis.load_simulation(run.run_dir)
    except FileNotFoundError:
        return [section.notice(f"Run {run.id} has no simulation yet (status {run.status}): it is written when the run completes.")]
    declared = config["task"].get("schedule", {}).get("trial_types", [])
    names = {i: f" ({t['name']})" for i, t in enumerate(declared) if t.get("name")}
    drawn = sorted({int(t) for t in sim["types"]})
    gamma_groups = len(analysis.param_groups(sim["gamma"]))
    panel_by = "gamma" if 1 < gamma_groups <= analysis.MAX_PANELS else None
    n, n_trials = sim["V"].shape[0], sim["V"].shape[1]
    picks = analysis.predictors_by_tau(sim, 3)
    for i in drawn:
        cue = analysis.cue_time(sim, i)
        label = f"trial type {i}{names.get(i, '')} ({int((sim['types'] == i).sum())} of {n_trials} trials)"
        files = analysis.value_at_time(sim, i, cue, "tau_eff", panel_by, out, f"value_at_cue_type{i}")
        split = f", one panel per gamma (values within {analysis.PANEL_TOLERANCE} together)" if panel_by else ""
        add_figure(section, files, f"Value at the cue ({cue:g} s) over the trials of {label}: {n} predictors coloured by their effective asymmetry per step, tau = alpha+^dt / (alpha+^dt + alpha-^dt), from {float(sim['tau_eff'].min()):.3f} to {float(sim['tau_eff'].max()):.3f} (drawn tau {float(sim['tau'].min()):.2f} to {float(sim['tau'].max()):.2f}){split}.", written)
        files = analysis.td_heatmaps(sim, i, picks, out, f"td_heatmaps_type{i}")
        add_figure(section, files, f"TD error over the trials of {label} and time within the trial, for the predictors of lowest, middle and highest tau.", written)
    gif = analysis.value_animation(sim, drawn[0], out / "value_animation.gif", title=f"run r{run.id}")
    shown = len(analysis.animation_trials(sim, drawn[0]))
    section.figure(gif, f"V(t) of every predictor (coloured by its effective tau), reward r(t) and TD error, one frame per trial of trial type {drawn[0]} ({shown} frames).", links=[gif])
    written.append(gif)
    return [section]


def _size(size: dict) -> str:
    if size["kind"] == "fixed":
        return f"{size['value']:g}"
    if size["kind"] == "normal":
        return f"~Normal({size['mean']:g}, {size['sd']:g})"
    pairs = ", ".join(f"{v:g} (p {p:g})" for v, p in zip(size["values"], size["probabilities"]))
    return f"one of {pairs}"


def _trial_type(i: int, trial_type: dict) -> str:
    rewards = [
        f"{_size(r['size'])} at {r['time']:g} s"
        + (f" with probability {r['probability']:g}" if r.get("probability", 1.0) != 1.0 else "")
        + (f" (time jitter {r['jitter']:g})" if r.get("jitter") else "")
        for r in trial_type.get("rewards", [])
    ]
    name = f" ({trial_type['name']})" if trial_type.get("name") else ""
    return (f"type {i}{name}, probability {trial_type['probability']:g}: cue at {trial_type['cue_time']:g} s, "
            f"{'reward ' + '; '.join(rewards) if rewards else 'no reward'}")


def methods(task: dict) -> str:
    schedule = task["schedule"]
    types = schedule["trial_types"]
    return (f"Value predictors were trained on the conditioning task {task['name']}: trials of {schedule['duration']:g} s "
            f"in steps of {schedule['dt']:g} s, cues coded as a complete serial compound, {plural(len(types), 'trial type')} "
            f"({'; '.join(_trial_type(i, t) for i, t in enumerate(types))}).")
