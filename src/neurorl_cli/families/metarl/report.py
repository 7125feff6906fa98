"""The meta-RL family's report: Harlow's accuracy by trial position or two-step's stay
probabilities, and the LSTM state over one episode of the best checkpoint."""

from __future__ import annotations

from neurorl_cli.analysis import checkpoints, html
from neurorl_cli.analysis.sections import PANEL_SEED, add_figure, score_sections
from neurorl_cli.families.metarl import analysis


def protocol_sections(ctx, name: str) -> list[html.Section]:
    """Scores, then Harlow's accuracy by trial position or two-step's stay probabilities, and
    the LSTM state of one episode of the best checkpoint."""
    config, evals, out, written = ctx.config, ctx.evaluations, ctx.out, ctx.written
    sections = score_sections(ctx, name)
    best = ctx.best(name)
    section = html.Section(f"Behaviour ({name})")
    kind = config["task"]["kind"]
    stem = checkpoints.safe_name(name)
    if kind == "harlow":
        files = analysis.accuracy_over_training(evals, out, stem)
        add_figure(section, files, f"Accuracy at each trial position of the episode at every evaluated checkpoint (mean over seeds, {name}). Meta-learning shows as trial 1 at chance and trials 2-6 rising together.", written)
        files = analysis.accuracy_by_position(best, out, stem)
        add_figure(section, files, "Best checkpoint of each seed: accuracy by trial position. Dashed: the best agent that sees no objects and only counts which side paid off (sides are balanced 3/3), computed exactly.", written)
    else:
        files = analysis.stay_probabilities(best, out, stem)
        index = best["model_based_index"].mean()
        add_figure(section, files, f"Probability of repeating the first-stage choice after rewarded / unrewarded trials with a common or rare transition (best checkpoint per seed, dots; {name}). Reward x transition interaction (model-based index) {index:+.3f}, reward main effect {best['reward_effect'].mean():+.3f}: a model-free agent repeats rewarded choices whatever the transition; a model-based one repeats after rewarded common and unrewarded rare transitions.", written)
    sections.append(section)
    sections.append(state_section(ctx, name))
    return sections


def state_section(ctx, name: str) -> html.Section:
    config, out, written = ctx.config, ctx.out, ctx.written
    section = html.Section(f"LSTM state over one episode ({name})")
    try:
        run, ckpt, path = ctx.checkpoint_file(ctx.top(name))
    except ValueError as exc:
        return section.notice(f"No state analysis: {exc}.")
    policy = ctx.load_policy(path)
    protocol = config["task"]["protocols"][name]
    episode = analysis.record_episode(policy, config["task"], int(protocol.get("seed", PANEL_SEED)), protocol.get("kwargs") or None)
    files = analysis.state_pca(episode, out, f"state_pca_{checkpoints.safe_name(name)}")
    if files is None:
        return section.notice("This policy exposes no recurrent state.")
    add_figure(section, files, f"Seed {run.seed}, checkpoint at step {ckpt.step}: the LSTM hidden state at every step of one {name} episode, projected on its first two principal components and coloured by trial; circles and crosses mark correct and wrong choices.", written)
    return section
