"""The Doom family's report: every metric its evaluations stored for each seed's best
checkpoint, and the retinal analyses (agent's view, receptive fields, rasters, t-SNE) of the best."""

from __future__ import annotations

from neurorl_cli.analysis import checkpoints, html
from neurorl_cli.analysis.sections import add_figure
from neurorl_cli.families.doom import analysis

# The columns every evaluation row has (api.Registry.evaluations); the others are its own metrics.
EVALUATION_COLUMNS = ["evaluation_id", "experiment_id", "run_id", "seed", "checkpoint_id", "step", "protocol", "select",
                      "score", "higher_is_better", "trials"]


def protocol_sections(ctx, name: str) -> list[html.Section]:
    """Checkpoint scores and every metric the evaluation stored for each seed's best."""
    section = html.Section(f"Evaluation: protocol {name}")
    add_figure(section, checkpoints.checkpoint_curve(ctx.evaluations, ctx.out, name),
               f"Score of every evaluated checkpoint under {name}, per seed and mean.", ctx.written)
    best = ctx.best(name)
    # Every metric the evaluation stored (true reward, health gathered, items, episode length).
    stored = [c for c in best.columns if c not in EVALUATION_COLUMNS]
    shown = ["seed", "run_id", "step", "select", "score"] + ([] if "episodes" in stored else ["trials"])
    return [section.text("Best checkpoint of each seed:").table(best.sort_values("seed")[shown + stored].reset_index(drop=True))]


def best_sections(ctx, name: str) -> list[html.Section]:
    """The retinal analyses of the best checkpoint."""
    try:
        run, ckpt, path = ctx.checkpoint_file(ctx.top(name))
    except ValueError as exc:
        return [html.Section("Analyses of the best checkpoint").notice(f"No analyses: {exc}.")]
    return analysis.doom_analysis_sections(ctx.register_file, ctx.config, run, ckpt, path, ctx.out, ctx.written,
                                           policy=ctx.load_policy(path), record=getattr(ctx.engine, "record", None))
