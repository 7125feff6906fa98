"""Checkpoint evaluations: score against checkpoint step, and the best checkpoint per seed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from neurorl_cli.analysis.figures import FigureFiles, new_figure, save, seed_color, styled

BEST_COLUMNS = ["seed", "run_id", "protocol", "step", "select", "score", "fraction_correct", "mean_reward", "mean_reaction_time", "trials"]


@styled
def checkpoint_curve(evaluations: pd.DataFrame, out_dir: Path, protocol: str) -> FigureFiles:
    """Each seed's score at each evaluated checkpoint under one protocol, and their mean."""
    data = evaluations[evaluations["protocol"] == protocol].sort_values(["seed", "step"])
    select = data["select"].iloc[0] if len(data) else "score"
    fig, axes = new_figure()
    ax = axes[0, 0]
    for i, (seed, group) in enumerate(data.groupby("seed", sort=True)):
        ax.plot(group["step"], group["score"], marker="o", ms=3, lw=0.8, alpha=0.7, color=seed_color(i), label=f"seed {seed}")
    mean = data.groupby("step", as_index=False)["score"].agg(mean="mean", n_seeds="count")
    ax.plot(mean["step"], mean["mean"], color="k", lw=1.8, label="mean")
    ax.set_xlabel("checkpoint step")
    ax.set_ylabel(f"{select} ({protocol})")
    ax.legend(fontsize="small", frameon=False)
    per_seed = data.pivot_table(index="step", columns="seed", values="score").add_prefix("seed_").reset_index()
    return save(fig, mean.merge(per_seed, on="step", how="left"), out_dir, f"checkpoints_{safe_name(protocol)}")


def best_table(best: pd.DataFrame) -> pd.DataFrame:
    """Rows of the best evaluations (`api.Registry.best_evaluations`) in a fixed column order."""
    present = [c for c in BEST_COLUMNS if c in best.columns]
    return best.sort_values(["protocol", "seed"])[present].reset_index(drop=True)


def safe_name(name: str) -> str:
    """A protocol name fit for a file name."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
