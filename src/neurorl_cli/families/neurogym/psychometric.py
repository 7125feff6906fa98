"""Psychometric and reaction-time curves of two-choice decision tasks.

Choices are actions 1 and 2 (0 is fixating, i.e. no response). Coherence is signed by the
ground truth: positive when option 2 was right, so a perfect observer's P(choose 2) steps
from 0 to 1 across zero. Trials without a response are left out of P(choose 2) and RT,
and counted in `responded` / `n`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from neurorl_cli.analysis.figures import FigureFiles, new_figure, save, seed_color, styled
from neurorl_cli.analysis.stats import binomial_se

OPTION_1, OPTION_2 = 1, 2


def signed_coherence(trials: pd.DataFrame) -> pd.Series:
    sign = np.where(trials["ground_truth"] == OPTION_2, 1.0, -1.0)
    return trials["coh"].astype(float) * sign + 0.0  # + 0.0 turns -0.0 into 0.0


def psychometric(trials: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """P(choose option 2) per signed coherence (and per `by`, e.g. seed)."""
    data = trials.assign(
        signed_coh=signed_coherence(trials),
        responded=trials["choice"].isin([OPTION_1, OPTION_2]),
        chose_2=trials["choice"] == OPTION_2,
    )
    keys = ([by] if by else []) + ["signed_coh"]
    rows = []
    for key, group in data.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        answered = group[group["responded"]]
        p = float(answered["chose_2"].mean()) if len(answered) else float("nan")
        rows.append({**dict(zip(keys, key)), "n": len(group), "responded": len(answered), "p_choose_2": p, "se": binomial_se(p, len(answered))})
    return pd.DataFrame(rows, columns=keys + ["n", "responded", "p_choose_2", "se"])


def reaction_times(trials: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Mean reaction time (ms) per unsigned coherence, split into correct and error trials."""
    data = trials[trials["reaction_time"].notna()].assign(
        coh=lambda t: t["coh"].astype(float),
        outcome=lambda t: np.where(t["correct"] > 0, "correct", "error"),
    )
    keys = ([by] if by else []) + ["coh", "outcome"]
    table = data.groupby(keys, as_index=False)["reaction_time"].agg(mean_rt="mean", sd_rt="std", n="count")
    table["sem_rt"] = table["sd_rt"] / np.sqrt(table["n"])
    return table.drop(columns="sd_rt")


@styled
def psychometric_curve(trials: pd.DataFrame, out_dir: Path, stem: str = "psychometric") -> FigureFiles:
    """Pooled curve with binomial error bars; each seed as a thin line when there are several."""
    pooled = psychometric(trials)
    per_seed = psychometric(trials, by="seed")
    fig, axes = new_figure(size=(5.0, 4.0))
    ax = axes[0, 0]
    if per_seed["seed"].nunique() > 1:
        for i, (seed, group) in enumerate(per_seed.groupby("seed")):
            ax.plot(group["signed_coh"], group["p_choose_2"], lw=0.7, alpha=0.5, color=seed_color(i), label=f"seed {seed}")
    ax.errorbar(pooled["signed_coh"], pooled["p_choose_2"], yerr=pooled["se"], color="k", marker="o", ms=4, lw=1.5, capsize=2, label="all seeds")
    ax.axhline(0.5, color="0.7", lw=0.6, ls=":")
    ax.axvline(0.0, color="0.7", lw=0.6, ls=":")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("signed coherence (+: option 2 correct)")
    ax.set_ylabel("P(choose option 2)")
    ax.legend(fontsize="small", frameon=False)
    data = pd.concat([pooled.assign(seed="all"), per_seed])[["seed", "signed_coh", "n", "responded", "p_choose_2", "se"]]
    return save(fig, data, out_dir, stem)


@styled
def reaction_time_curve(trials: pd.DataFrame, out_dir: Path, stem: str = "reaction_time") -> FigureFiles:
    table = reaction_times(trials)
    fig, axes = new_figure(size=(5.0, 4.0))
    ax = axes[0, 0]
    for outcome, color in (("correct", "tab:green"), ("error", "tab:red")):
        group = table[table["outcome"] == outcome]
        if len(group):
            ax.errorbar(group["coh"], group["mean_rt"], yerr=group["sem_rt"], marker="o", ms=4, capsize=2, color=color, label=outcome)
    ax.set_xlabel("coherence")
    ax.set_ylabel("reaction time from stimulus onset (ms)")
    ax.legend(fontsize="small", frameon=False)
    return save(fig, table, out_dir, stem)
