"""Meta-RL analyses: Harlow accuracy by trial position, two-step stay probabilities, the LSTM
state of one episode in its first principal components, and episode frames for GIFs."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from neurorl_cli.analysis.figures import FigureFiles, new_figure, save, seed_color, styled

STAY_KEYS = ["stay_rewarded_common", "stay_rewarded_rare", "stay_unrewarded_common", "stay_unrewarded_rare"]


def blind_baseline(trials: int = 6) -> np.ndarray:
    """Accuracy by trial position of the best agent that sees no objects.

    Sides are balanced (the rewarded object is on the left in half the trials, all orders
    equally likely), so an agent that only counts which side paid off picks the side with
    more rewarded trials left. Exact, by enumerating every order."""
    half = trials // 2
    orders = [o for o in itertools.product((0, 1), repeat=trials) if sum(o) == half]
    hits = np.zeros(trials)
    for order in orders:
        for k in range(trials):
            left_remaining = (trials - half) - sum(1 for s in order[:k] if s == 0)
            right_remaining = half - sum(order[:k])
            if left_remaining == right_remaining:
                hits[k] += 0.5
            else:
                hits[k] += float((order[k] == 0) == (left_remaining > right_remaining))
    return hits / len(orders)


def position_columns(frame: pd.DataFrame) -> list[str]:
    cols = [c for c in frame.columns if c.startswith("accuracy_trial_")]
    return sorted(cols, key=lambda c: int(c.rsplit("_", 1)[1]))


@styled
def accuracy_over_training(evals: pd.DataFrame, out_dir: Path, protocol: str) -> FigureFiles:
    """Accuracy at each trial position (mean over seeds) at every evaluated checkpoint."""
    data = evals[evals["protocol"] == protocol]
    cols = position_columns(data)
    mean = data.groupby("step", as_index=False)[cols].mean()
    fig, axes = new_figure()
    ax = axes[0, 0]
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    for i, col in enumerate(cols):
        ax.plot(mean["step"], mean[col], marker="o", ms=3, color=cmap(i / max(1, len(cols) - 1)), label=f"trial {col.rsplit('_', 1)[1]}")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_ylim(0.3, 1.02)
    ax.set_xlabel("checkpoint step")
    ax.set_ylabel(f"accuracy ({protocol})")
    ax.legend(fontsize="small", frameon=False, ncol=2)
    return save(fig, mean, out_dir, f"accuracy_by_position_training_{protocol}")


@styled
def accuracy_by_position(best: pd.DataFrame, out_dir: Path, protocol: str) -> FigureFiles:
    """Best checkpoint of each seed: accuracy by trial position, beside the blind baseline."""
    cols = position_columns(best)
    positions = np.array([int(c.rsplit("_", 1)[1]) for c in cols])
    fig, axes = new_figure(size=(5.2, 4.0))
    ax = axes[0, 0]
    for i, row in enumerate(best.sort_values("seed").itertuples()):
        ax.plot(positions, [getattr(row, c) for c in cols], marker="o", ms=3, lw=0.8, alpha=0.7, color=seed_color(i), label=f"seed {row.seed}")
    mean = best[cols].mean().to_numpy()
    ax.plot(positions, mean, color="k", lw=2, marker="o", label="mean")
    blind = blind_baseline(len(cols))
    ax.plot(positions, blind, color="grey", ls="--", marker="s", ms=3, label="blind side counter")
    ax.set_xticks(positions)
    ax.set_ylim(0.3, 1.02)
    ax.set_xlabel("trial in episode")
    ax.set_ylabel(f"accuracy ({protocol})")
    ax.legend(fontsize="small", frameon=False)
    data = pd.DataFrame({"position": positions, "mean": mean, "blind_baseline": blind})
    for row in best.itertuples():
        data[f"seed_{row.seed}"] = [getattr(row, c) for c in cols]
    return save(fig, data, out_dir, f"accuracy_by_position_{protocol}")


@styled
def stay_probabilities(best: pd.DataFrame, out_dir: Path, protocol: str) -> FigureFiles:
    """Two-step stay probabilities after rewarded/unrewarded x common/rare trials (Daw et al.)."""
    fig, axes = new_figure(size=(4.6, 4.0))
    ax = axes[0, 0]
    x = np.array([0, 1, 3, 4])
    colors = ["tab:blue", "tab:red", "tab:blue", "tab:red"]
    mean = best[STAY_KEYS].mean().to_numpy()
    ax.bar(x, mean, color=colors, alpha=0.7, width=0.8)
    for i, row in enumerate(best.itertuples()):
        ax.scatter(x + (i - (len(best) - 1) / 2) * 0.08, [getattr(row, k) for k in STAY_KEYS], color="k", s=8, zorder=3)
    ax.set_xticks([0.5, 3.5], ["rewarded", "unrewarded"])
    ax.set_ylabel("P(repeat first-stage choice)")
    ax.set_ylim(0, 1)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color="tab:blue", alpha=0.7, label="common"), Patch(color="tab:red", alpha=0.7, label="rare")],
              frameon=False, fontsize="small", loc="lower right")
    data = pd.DataFrame({"condition": STAY_KEYS, "mean": mean})
    for row in best.itertuples():
        data[f"seed_{row.seed}"] = [getattr(row, k) for k in STAY_KEYS]
    return save(fig, data, out_dir, f"stay_probabilities_{protocol}")


def record_episode(policy, task: dict, seed: int, extra_kwargs: dict | None = None, deterministic: bool = True) -> pd.DataFrame:
    """One episode, step by step: observation, action, reward, trial events and LSTM state."""
    from neurorl_cli.families.metarl.rollout import run_episodes

    steps: list[dict] = []

    def on_step(t, obs, action, reward, info):
        row = {"t": t, "obs": obs[0].numpy().copy(), "action": int(action[0]), "reward": float(reward[0]),
               "trial_end": bool(info["trial_end"][0])}
        row.update({k: float(v[0]) for k, v in info.items() if k != "trial_end"})
        activity = policy.activity()
        if "lstm_h" in activity:
            row["lstm_h"] = np.asarray(activity["lstm_h"][0]).copy()
        steps.append(row)

    run_episodes(policy, task, 1, seed, extra_kwargs, deterministic, on_step=on_step)
    table = pd.DataFrame(steps)
    ends = table["trial_end"].to_numpy()
    table["trial"] = np.concatenate([[0], np.cumsum(ends)[:-1]]) + 1  # the trial each step belongs to
    return table


@styled
def state_pca(episode: pd.DataFrame, out_dir: Path, stem: str) -> FigureFiles | None:
    """The LSTM state over one episode projected on its first two principal components."""
    if "lstm_h" not in episode.columns:
        return None
    states = np.stack(episode["lstm_h"].to_numpy())
    centred = states - states.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    pcs = centred @ vt[:2].T
    explained = (sv[:2] ** 2) / max((sv ** 2).sum(), 1e-12)
    fig, axes = new_figure(size=(5.6, 4.4))
    ax = axes[0, 0]
    ax.plot(pcs[:, 0], pcs[:, 1], color="lightgrey", lw=0.8, zorder=1)
    trial = episode["trial"].to_numpy()
    points = ax.scatter(pcs[:, 0], pcs[:, 1], c=trial, cmap="viridis", s=14, zorder=2)
    ends = episode["trial_end"].to_numpy()
    if "correct" in episode.columns:
        ok = ends & (episode["correct"].to_numpy() == 1)
        ax.scatter(pcs[ok, 0], pcs[ok, 1], marker="o", facecolors="none", edgecolors="tab:green", s=60, label="correct choice")
        ax.scatter(pcs[ends & ~ok, 0], pcs[ends & ~ok, 1], marker="x", color="tab:red", s=40, label="wrong choice")
        ax.legend(fontsize="small", frameon=False)
    fig.colorbar(points, ax=ax, label="trial")
    ax.set_xlabel(f"PC1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({explained[1]:.0%})")
    data = pd.DataFrame({"t": episode["t"], "trial": trial, "pc1": pcs[:, 0], "pc2": pcs[:, 1], "trial_end": ends})
    return save(fig, data, out_dir, stem)


# -- GIF frames --------------------------------------------------------------------------------


def render_frames(episode: pd.DataFrame, task: dict, title: str) -> list[np.ndarray]:
    """One frame per step: what the agent sees, its choice and the reward, trial by trial."""
    import matplotlib

    from neurorl_cli.analysis.figures import STYLE

    frames = []
    draw = _draw_harlow if task["kind"] == "harlow" else _draw_two_step
    with matplotlib.rc_context(STYLE):
        fig, axes = new_figure(1, 1, size=(6.0, 3.4))
        ax = axes[0, 0]
        total = 0.0
        for row in episode.itertuples():
            total += row.reward
            ax.clear()
            ax.set_xlim(0, 10)
            ax.set_ylim(0, 6)
            ax.axis("off")
            draw(ax, row, task)
            ax.text(0.1, 0.2, f"trial {row.trial}   reward {row.reward:+g}   total {total:+g}", fontsize=10)
            fig.suptitle(title, fontsize="small")
            fig.set_dpi(72)
            fig.canvas.draw()
            frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    return frames


def _draw_harlow(ax, row, task: dict) -> None:
    env = task.get("env", {})
    obs = np.asarray(row.obs)
    if env.get("observation", "features") == "pixels":
        size = int(env.get("image_size", 8))
        screen = obs[: 2 * size * size].reshape(size, 2 * size)
        ax.imshow(screen, cmap="gray_r", extent=(1.5, 8.5, 1.2, 4.7), vmin=0, vmax=1)
        showing = screen.sum() > 0
    else:
        dim = int(env.get("feature_dim", 8))
        left, right = obs[1:1 + dim], obs[1 + dim:1 + 2 * dim]
        showing = bool(np.abs(left).sum() > 0)
        if obs[0] > 0:
            ax.text(5, 3, "+", fontsize=40, ha="center", va="center", color="red")
        if showing:
            ax.imshow(left[None], cmap="coolwarm", extent=(1, 4, 2.5, 3.5), vmin=-2, vmax=2)
            ax.imshow(right[None], cmap="coolwarm", extent=(6, 9, 2.5, 3.5), vmin=-2, vmax=2)
    if row.trial_end:  # the choice step: mark the chosen side
        x = 2.5 if row.action == 0 else 7.5
        color = "tab:green" if row.correct == 1 else "tab:red"
        ax.annotate("", xy=(x, 2.2), xytext=(5, 1.0), arrowprops=dict(arrowstyle="->", color=color, lw=3))
        ax.text(5, 5.3, "correct" if row.correct == 1 else "wrong", color=color, ha="center", fontsize=12)
    elif not showing:
        ax.text(5, 5.3, "fixation / interval", color="grey", ha="center", fontsize=10)


def _draw_two_step(ax, row, task: dict) -> None:
    obs = np.asarray(row.obs)
    state = int(np.argmax(obs[:3]))
    boxes = {0: (5, 4.3, "S1"), 1: (2.5, 2.0, "S2"), 2: (7.5, 2.0, "S3")}
    for s, (x, y, name) in boxes.items():
        ax.text(x, y, name, ha="center", va="center", fontsize=14,
                bbox=dict(boxstyle="round", fc="gold" if s == state else "white", ec="k"))
    if state == 0:
        ax.text(5, 5.5, f"choose: action {row.action}", ha="center", fontsize=10)
    if row.trial_end:
        kind = "common" if getattr(row, "common", 1) == 1 else "rare"
        good = "S2" if getattr(row, "good_state", 1) == 1 else "S3"
        won = "rewarded" if row.reward > 0 else "no reward"
        ax.text(5, 3.2, f"{kind} transition, {won} (good state {good})", ha="center", fontsize=10,
                color="tab:green" if row.reward > 0 else "tab:red")
