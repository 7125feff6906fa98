"""NeuroGym's report sections: trial panels of the best checkpoint, and for decision tasks the
psychometric and reaction-time curves of each seed's best checkpoint."""

from __future__ import annotations

from neurorl_cli.analysis import checkpoints, html
from neurorl_cli.analysis.sections import PANEL_SEED, add_figure, score_sections
from neurorl_cli.families.neurogym import panels, psychometric

PANEL_TRIALS = 8


def protocol_sections(ctx, protocol: str) -> list[html.Section]:
    sections = score_sections(ctx, protocol)
    sections.append(panel_section(ctx, protocol))
    if ctx.config["task"].get("kind") == "decision":
        sections.append(decision_section(ctx, protocol))
    return sections


def panel_section(ctx, protocol: str) -> html.Section:
    section = html.Section(f"Trials of the best checkpoint ({protocol})")
    top = ctx.top(protocol)
    try:
        run, ckpt, path = ctx.checkpoint_file(top)
    except ValueError as exc:
        return section.notice(f"No trial panels: {exc}.")
    policy = ctx.load_policy(path)
    env_spec, seed = protocol_env(ctx.config["task"], protocol)
    records = panels.record_trials(policy, env_spec, PANEL_TRIALS, seed)
    caption = (
        f"Seed {run.seed}, checkpoint at step {ckpt.step} ({top['select']} {top['score']:.3f}): observations, "
        f"actions against ground truth, rewards and per-trial performance over {PANEL_TRIALS} trials "
        f"(environment seed {seed}); grey lines mark trial ends. The recurrent state is carried throughout."
    )
    files = panels.trial_panels(records, ctx.out, panels.observation_names(env_spec),
                                stem=f"trial_panels_{checkpoints.safe_name(protocol)}")
    add_figure(section, files, caption, ctx.written)
    return section


def decision_section(ctx, protocol: str) -> html.Section:
    section = html.Section(f"Choices and reaction times ({protocol})")
    trials = ctx.trials(protocol)
    if not len(trials) or "coh" not in trials.columns:
        return section.notice("No stored trials with a coherence for the best checkpoints; re-run the evaluation to store them.")
    stem = checkpoints.safe_name(protocol)
    n = f"{len(trials)} trials of the best checkpoint of {trials['seed'].nunique()} seed(s)"
    add_figure(section, psychometric.psychometric_curve(trials, ctx.out, f"psychometric_{stem}"),
               f"P(choose option 2) against coherence signed by the correct option; {n}.", ctx.written)
    add_figure(section, psychometric.reaction_time_curve(trials, ctx.out, f"reaction_time_{stem}"),
               f"Reaction time from stimulus onset against coherence, correct and error trials; {n}.", ctx.written)
    return section


def protocol_env(task: dict, protocol: str) -> tuple[dict, int]:
    """The task's environment table with a protocol's kwargs applied, and the protocol's seed."""
    env_spec = dict(task["env"])
    spec = task.get("protocols", {}).get(protocol, {})
    env_spec["kwargs"] = {**env_spec.get("kwargs", {}), **spec.get("kwargs", {})}
    return env_spec, int(spec.get("seed", PANEL_SEED))
