"""Training curves: one metric against agent steps, seeds as thin lines, mean and a
95% bootstrap interval over seeds; and the same summary compared across experiments."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from neurorl_cli.analysis.figures import FigureFiles, lone_point, new_figure, save, seed_color, styled
from neurorl_cli.analysis.stats import bootstrap_ci

TRAINING_KEY = "perf/trial_performance"


def latest_attempt(metrics: pd.DataFrame) -> pd.DataFrame:
    """One value per (run, key, step): the latest attempt's, since a resumed run redoes steps."""
    ordered = metrics.sort_values(["run_id", "key", "step", "attempt"])
    return ordered.drop_duplicates(["run_id", "key", "step"], keep="last").reset_index(drop=True)


def over_seeds(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per step: mean over the seeds that logged it, its 95% bootstrap interval, and n."""
    rows = []
    for step, group in metrics.groupby("step", sort=True):
        mean, lo, hi = bootstrap_ci(group["value"].to_numpy())
        rows.append({"step": int(step), "mean": mean, "ci_low": lo, "ci_high": hi, "n_seeds": len(group)})
    return pd.DataFrame(rows, columns=["step", "mean", "ci_low", "ci_high", "n_seeds"])


@styled
def training_curve(metrics: pd.DataFrame, out_dir: Path, key: str = TRAINING_KEY, stem: str = "training_curve",
                   xlabel: str = "agent steps") -> FigureFiles:
    """`metrics` as from `api.Registry.metrics` (columns run_id, seed, attempt, key, step, value)."""
    data = latest_attempt(metrics[metrics["key"] == key])
    summary = over_seeds(data)
    fig, axes = new_figure()
    ax = axes[0, 0]
    for i, (seed, group) in enumerate(data.groupby("seed", sort=True)):
        ax.plot(group["step"], group["value"], lw=0.7, alpha=0.6, color=seed_color(i), label=f"seed {seed}", **lone_point(group))
    ax.fill_between(summary["step"], summary["ci_low"], summary["ci_high"], color="k", alpha=0.15, lw=0, label="95% CI (seeds)")
    ax.plot(summary["step"], summary["mean"], color="k", lw=1.8, label="mean", **lone_point(summary))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(key)
    ax.legend(fontsize="small", frameon=False)
    per_seed = data.pivot_table(index="step", columns="seed", values="value").add_prefix("seed_").reset_index()
    return save(fig, summary.merge(per_seed, on="step", how="left"), out_dir, stem)


@styled
def comparison_curve(metrics: pd.DataFrame, out_dir: Path, key: str = TRAINING_KEY, stem: str = "comparison",
                     xlabel: str = "agent steps") -> FigureFiles:
    """One mean curve with its seed interval per experiment, on shared axes.

    `metrics` needs a `label` column naming each row's experiment (e.g. model and name).
    """
    data = latest_attempt(metrics[metrics["key"] == key])
    fig, axes = new_figure(size=(7.2, 4.4))
    ax = axes[0, 0]
    parts = []
    for i, (label, group) in enumerate(data.groupby("label", sort=True)):
        summary = over_seeds(group)
        color = seed_color(i)
        ax.fill_between(summary["step"], summary["ci_low"], summary["ci_high"], color=color, alpha=0.2, lw=0)
        ax.plot(summary["step"], summary["mean"], color=color, lw=1.6, label=f"{label} (n={group['seed'].nunique()})", **lone_point(summary))
        parts.append(summary.assign(label=label))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(key)
    ax.legend(fontsize="small", frameon=False)
    columns = ["label", "step", "mean", "ci_low", "ci_high", "n_seeds"]
    table = pd.concat(parts)[columns] if parts else pd.DataFrame(columns=columns)
    return save(fig, table, out_dir, stem)
