"""Firefly analyses of the modularity study: paths seen from above, the decoding of the position
relative to the target from the actor's recurrent state (beside the EKF's error), and how
performance generalises to joystick gains never trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from neurorl_cli.analysis.figures import FigureFiles, new_figure, save, seed_color, styled

CM = 400.0  # cm per environment unit (families/firefly/env.py LINEAR_SCALE)


def record(engine, config: dict, checkpoint: Path, protocol: dict, trials: int = 200) -> dict[str, np.ndarray]:
    """`trials` trials of the protocol played by the checkpoint's agent, step by step: the engine
    records them (`record_trials`), since only it knows its agents' inputs (the EKF's belief)."""
    if not hasattr(engine, "record_trials"):
        raise ValueError(f"the {engine.name} engine does not record firefly trials step by step")
    return engine.record_trials(config, checkpoint, protocol, trials)


@styled
def trajectories(recording: dict[str, np.ndarray], out_dir: Path, stem: str, shown: int = 12) -> FigureFiles:
    """Paths of the first `shown` trials from above: start at the origin facing up, the target
    with its reward zone, the stop (filled: rewarded)."""
    from matplotlib.patches import Circle

    fig, axes = new_figure(size=(5.2, 5.2))
    ax = axes[0, 0]
    rows = []
    for i in range(min(shown, recording["target"].shape[0])):
        steps = int(recording["steps"][i])
        path = recording["position"][: steps + 1, i] * CM
        target = recording["target"][i] * CM
        color = seed_color(i)
        ax.plot(path[:, 0], path[:, 1], color=color, lw=1.2)
        ax.add_patch(Circle(target, float(recording["goal_radius_cm"]), color=color, alpha=0.12, lw=0))
        ax.plot(*target, marker="x", color=color, ms=6)
        ax.plot(*path[-1], marker="o", ms=5, color=color, mfc=color if recording["rewarded"][i] else "white")
        rows += [{"trial": i, "step": t, "x_cm": x, "y_cm": y, "target_x_cm": target[0], "target_y_cm": target[1]}
                 for t, (x, y) in enumerate(path)]
    ax.plot(0, 0, marker="^", color="k", ms=8)
    ax.set_aspect("equal")
    ax.set_xlabel("x (cm)")
    ax.set_ylabel("y (cm)")
    return save(fig, pd.DataFrame(rows), out_dir, stem)


def decoding_errors(recording: dict[str, np.ndarray], train_fraction: float = 0.5) -> pd.DataFrame | None:
    """Per step of the trial: the error (cm) of a linear decoder (least squares with an
    intercept, fitted on the first half of the trials, tested on the rest) reading the agent's
    position relative to the target from the actor's recurrent state, and the EKF's error on
    the same test trials. None when the actor keeps no recurrent state."""
    if "hidden" not in recording:
        return None
    hidden, active = recording["hidden"], recording["active"]  # (T, n, H), (T, n)
    T, n, _ = hidden.shape
    truth = recording["position"][:T] - recording["target"][None]  # where the agent is, from the target
    ekf = recording["belief_position"] - recording["target"][None]
    split = max(1, int(n * train_fraction))
    fit = active[:, :split]
    X = np.concatenate([hidden[:, :split][fit], np.ones((fit.sum(), 1))], axis=1)
    weights, *_ = np.linalg.lstsq(X, truth[:, :split][fit], rcond=None)
    test_hidden = np.concatenate([hidden[:, split:], np.ones((T, n - split, 1))], axis=2)
    decoded = test_hidden @ weights
    rows = []
    for t in range(T):
        mask = active[t, split:]
        if mask.sum() < 3:
            break
        rows.append({
            "step": t, "trials": int(mask.sum()),
            "decoder_error_cm": float(np.linalg.norm(decoded[t][mask] - truth[t, split:][mask], axis=1).mean() * CM),
            "ekf_error_cm": float(np.linalg.norm(ekf[t, split:][mask] - truth[t, split:][mask], axis=1).mean() * CM),
        })
    return pd.DataFrame(rows)


@styled
def decoding_plot(errors: pd.DataFrame, out_dir: Path, stem: str) -> FigureFiles:
    fig, axes = new_figure()
    ax = axes[0, 0]
    ax.plot(errors["step"] * 0.1, errors["decoder_error_cm"], color="tab:blue", lw=1.6, label="linear decoder of the recurrent state")
    ax.plot(errors["step"] * 0.1, errors["ekf_error_cm"], color="tab:orange", lw=1.6, label="EKF belief")
    ax.set_xlabel("time in trial (s)")
    ax.set_ylabel("error of the position relative to the target (cm)")
    ax.legend(fontsize="small", frameon=False)
    return save(fig, errors, out_dir, stem)


def gain_table(best_rows: pd.DataFrame) -> pd.DataFrame:
    """The evaluations of one checkpoint per seed under every gain protocol (names `gain<g>x`,
    with 1-5x for 1.5x), as rows of gain, seed and the metrics."""
    rows = []
    for row in best_rows.itertuples():
        name = str(row.protocol)
        if not (name.startswith("gain") and name.endswith("x")):
            continue
        gain = float(name[4:-1].replace("-", "."))
        rows.append({"gain": gain, "seed": row.seed, "reward_rate": row.reward_rate, "reward_fraction": row.reward_fraction,
                     "overshoot_cm": row.overshoot_cm, "distance_cm": row.distance_cm})
    return pd.DataFrame(rows).sort_values(["gain", "seed"]) if rows else pd.DataFrame()


@styled
def gain_plot(table: pd.DataFrame, out_dir: Path, stem: str) -> FigureFiles:
    """Reward rate and signed overshoot against joystick gain, per seed and mean."""
    fig, axes = new_figure(1, 2, size=(9.0, 3.8))
    for ax, key, label in ((axes[0, 0], "reward_rate", "reward rate (rewarded trials / s)"),
                           (axes[0, 1], "overshoot_cm", "signed over (+) / undershoot (-) (cm)")):
        for i, (seed, group) in enumerate(table.groupby("seed", sort=True)):
            ax.plot(group["gain"], group[key], marker="o", lw=0.8, alpha=0.6, color=seed_color(i), label=f"seed {seed}")
        mean = table.groupby("gain")[key].mean()
        ax.plot(mean.index, mean.values, color="k", lw=1.8, label="mean")
        ax.set_xlabel("joystick gain (x training)")
        ax.set_ylabel(label)
    axes[0, 1].axhline(0, color="grey", lw=0.6)
    axes[0, 0].legend(fontsize="small", frameon=False)
    return save(fig, table, out_dir, stem)


def render_frames(recording: dict[str, np.ndarray], title: str, trials: int) -> list[np.ndarray]:
    """One frame per step of the first `trials` recorded trials, seen from above: the path so
    far, the target while it is shown (then only its outline, as the agent no longer sees
    it), and at the stop whether it was rewarded."""
    from matplotlib.patches import Circle

    radius, visible_steps = float(recording["goal_radius_cm"]), int(recording["visible_steps"])
    # One figure whose artists move from frame to frame: a new figure (and its constrained
    # layout) per frame took most of `watch`'s time.
    fig, axes = new_figure(size=(4.0, 4.4))
    ax = axes[0, 0]
    ax.set_xlim(-300, 300)
    ax.set_ylim(-50, 550)
    ax.set_aspect("equal")
    ax.set_xlabel("x (cm)", fontsize=8)
    ax.tick_params(labelsize=7)
    target = ax.add_patch(Circle((0.0, 0.0), radius, color="tab:green"))
    (trace,) = ax.plot([], [], color="tab:blue", lw=1.5)
    (agent,) = ax.plot([], [], marker="o", color="tab:blue", ms=6)
    (stop,) = ax.plot([], [], marker="o", ms=11, mfc="none")
    heading = ax.set_title(f"{title}\ntrial 1", fontsize=8)
    fig.canvas.draw()
    fig.set_layout_engine("none")  # keep the positions laid out above for every frame
    frames = []
    for i in range(min(trials, recording["target"].shape[0])):
        steps = int(recording["steps"][i])
        path = recording["position"][: steps + 1, i] * CM
        target.center = tuple(recording["target"][i] * CM)
        rewarded = bool(recording["rewarded"][i])
        stop.set_color("tab:green" if rewarded else "tab:red")
        for t in range(steps + 1):
            shown = t <= visible_steps
            target.set_fill(shown)
            target.set_alpha(0.5 if shown else 0.35)
            target.set_linestyle("-" if shown else "--")
            trace.set_data(path[: t + 1, 0], path[: t + 1, 1])
            agent.set_data(path[t : t + 1, 0], path[t : t + 1, 1])
            stop.set_data(path[t : t + 1, 0], path[t : t + 1, 1])
            stop.set_visible(t == steps)
            status = "target shown" if shown else "target hidden"
            if t == steps:
                status = "stop: rewarded" if rewarded else "stop: missed"
            heading.set_text(f"{title}\ntrial {i + 1}, t = {t * 0.1:.1f} s: {status}")
            fig.canvas.draw()
            frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    return frames
