"""Trial panels: what the agent saw, did and got, step by step, with trials marked.

Like NeuroGym's `plot_env`, but the policy runs through `rollout.record_steps`, so its
recurrent state is carried across steps and trials. Also draws the frames of `watch`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from neurorl_cli.analysis.figures import FigureFiles, new_figure, save, styled

MAX_TRACES = 10  # more observation dimensions than this are drawn as an image
MAX_STEPS = 100_000


def record_trials(policy, env_spec: dict, n_trials: int, seed: int) -> list[dict]:
    """Steps covering the first `n_trials` whole trials of a seeded environment.

    Trials vary in length, so the number of steps is found by doubling; the same seed
    replays the same trials, so a longer recording starts with the shorter one.
    """
    from neurorl_cli.families.neurogym.rollout import record_steps

    n_steps = 16 * n_trials
    while True:
        records = record_steps(policy, env_spec, n_steps, seed)
        ends = [i for i, r in enumerate(records) if r["new_trial"]]
        if len(ends) >= n_trials:
            return records[: ends[n_trials - 1] + 1]
        if n_steps >= MAX_STEPS:
            return records
        n_steps *= 2


def observation_names(env_spec: dict) -> list[str]:
    """Names of the observation dimensions: the task's own, then one per appending wrapper."""
    from neurorl_cli.families.neurogym.envs import make_env

    env = make_env(env_spec, seed=0)
    try:
        size = int(np.prod(env.observation_space.shape))
        names = [f"ob {i}" for i in range(size)]
        for name, where in (getattr(env.unwrapped.observation_space, "name", None) or {}).items():
            where = [where] if isinstance(where, int) else list(where)
            for k, index in enumerate(where):
                if index < size:
                    names[index] = name if len(where) == 1 else f"{name} {k + 1}"
        base_size = int(np.prod(env.unwrapped.observation_space.shape))
        extra = [w["name"] for w in env_spec.get("wrappers", [])]
        for i in range(base_size, size):  # PassReward, PassAction... append in wrapping order
            names[i] = extra[i - base_size] if i - base_size < len(extra) else names[i]
        return names
    finally:
        env.close()


def records_table(records: list[dict], ob_names: list[str] | None = None) -> pd.DataFrame:
    obs = np.stack([np.ravel(r["obs"]) for r in records]) if records else np.zeros((0, 0))
    names = ob_names if ob_names and len(ob_names) == obs.shape[1] else [f"ob {i}" for i in range(obs.shape[1])]
    table = pd.DataFrame(obs, columns=names)
    table.insert(0, "step", np.arange(len(records)))
    for key in ("action", "gt", "reward", "performance"):
        table[key] = pd.to_numeric(pd.Series([r.get(key) for r in records], dtype=object), errors="coerce")
    table["new_trial"] = [bool(r.get("new_trial")) for r in records]
    table["trial"] = np.concatenate([[0], np.cumsum(table["new_trial"].to_numpy(dtype=int))[:-1]]) if records else []
    return table


def draw(axes, table: pd.DataFrame, upto: int | None = None) -> None:
    """Draw the four panels on `axes` (a column of 4), showing steps [0, upto)."""
    shown = table if upto is None else table.iloc[:upto]
    obs_cols = [c for c in table.columns if c not in ("step", "action", "gt", "reward", "performance", "new_trial", "trial")]
    ax_obs, ax_act, ax_rew, ax_perf = axes
    if len(obs_cols) <= MAX_TRACES:
        for col in obs_cols:
            ax_obs.plot(shown["step"], shown[col], lw=1.0, label=col)
        ax_obs.legend(fontsize="x-small", frameon=False, loc="upper right", ncol=min(4, len(obs_cols)))
        ax_obs.set_ylim(_limits(table[obs_cols].to_numpy()))
    else:
        image = np.full((len(obs_cols), len(table)), np.nan)
        image[:, : len(shown)] = shown[obs_cols].to_numpy().T
        ax_obs.imshow(image, aspect="auto", origin="lower", interpolation="nearest", extent=(-0.5, len(table) - 0.5, -0.5, len(obs_cols) - 0.5))
    ax_obs.set_ylabel("observation")
    ax_act.step(shown["step"], shown["gt"], where="mid", color="0.55", ls="--", lw=1.4, label="ground truth")
    ax_act.step(shown["step"], shown["action"], where="mid", color="tab:blue", lw=1.2, label="action")
    actions = pd.concat([table["action"], table["gt"]]).dropna()
    if len(actions):
        ax_act.set_yticks(np.arange(int(actions.min()), int(actions.max()) + 1))
        ax_act.set_ylim(actions.min() - 0.4, actions.max() + 0.4)
    ax_act.set_ylabel("action")
    ax_act.legend(fontsize="x-small", frameon=False, loc="upper right", ncol=2)
    ax_rew.step(shown["step"], shown["reward"], where="mid", color="tab:orange", lw=1.2)
    ax_rew.set_ylim(_limits(table["reward"].to_numpy(dtype=float)))
    ax_rew.set_ylabel("reward")
    ends = shown[shown["new_trial"].astype(bool)]
    ax_perf.plot(ends["step"], ends["performance"], "o", color="tab:green", ms=5)
    ax_perf.set_ylim(-0.15, 1.15)
    ax_perf.set_ylabel("performance")
    ax_perf.set_xlabel("step")
    for ax in axes:
        ax.set_xlim(-0.5, len(table) - 0.5)
        for step in ends["step"]:  # a trial ends after this step
            ax.axvline(step + 0.5, color="0.8", lw=0.8, zorder=0)


@styled
def trial_panels(records: list[dict], out_dir: Path, ob_names: list[str] | None = None, stem: str = "trial_panels", title: str = "") -> FigureFiles:
    table = records_table(records, ob_names)
    fig, axes = new_figure(4, 1, size=(9.0, 7.5), sharex=True)
    draw(axes[:, 0], table)
    if title:
        fig.suptitle(title, fontsize="medium")
    return save(fig, table, out_dir, stem)


def _limits(values: np.ndarray) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (-1.0, 1.0)
    lo, hi = float(values.min()), float(values.max())
    pad = 0.1 * (hi - lo) if hi > lo else 0.5
    return lo - pad, hi + pad
