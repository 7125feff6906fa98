"""The firefly family's report: the best checkpoint's paths and the decoding of its recurrent
state beside the EKF's; the gain generalisation of each seed's best."""

from __future__ import annotations

from neurorl_cli.analysis import checkpoints, html
from neurorl_cli.analysis.sections import add_figure
from neurorl_cli.families.firefly import analysis


def best_sections(ctx, name: str) -> list[html.Section]:
    """The best checkpoint's paths and the decoding of its recurrent state; the gain
    generalisation of each seed's best."""
    config, evals, out, written = ctx.config, ctx.evaluations, ctx.out, ctx.written
    sections = []
    best = ctx.best(name)
    section = html.Section(f"Behaviour and belief of the best checkpoint ({name})")
    try:
        run, ckpt, path = ctx.checkpoint_file(ctx.top(name))
        recording = analysis.record(ctx.engine, config, path, config["task"]["protocols"][name])
    except ValueError as exc:
        return [section.notice(f"No analysis: {exc}.")]
    stem = checkpoints.safe_name(name)
    add_figure(section, analysis.trajectories(recording, out, f"trajectories_{stem}"), f"Seed {run.seed}, checkpoint at {ckpt.step}: paths of 12 {name} trials seen from above (triangle: start, facing up; cross and disc: target and its {float(recording['goal_radius_cm']):.0f} cm reward zone; circle: the stop, filled when rewarded).", written)
    errors = analysis.decoding_errors(recording)
    if errors is None:
        section.notice("This agent keeps no recurrent state (its memory is the EKF): nothing to decode.")
    else:
        add_figure(section, analysis.decoding_plot(errors, out, f"belief_decoding_{stem}"), f"Position relative to the target decoded linearly from the actor's LSTM state (fitted on half of {len(recording['target'])} trials, tested on the other half) beside the error of an EKF given the same observations and actions, per time step.", written)
    sections.append(section)
    chosen = set(best["checkpoint_id"])
    gains = analysis.gain_table(evals[evals["checkpoint_id"].isin(chosen)])
    if len(gains) and gains["gain"].nunique() >= 2:
        section = html.Section("Gain generalisation")
        add_figure(section, analysis.gain_plot(gains, out, "gain_generalisation"), f"The checkpoint of each seed that is best under {name}, evaluated at joystick gains it never trained on (it trained at 1x).", written)
        sections.append(section)
    return sections
