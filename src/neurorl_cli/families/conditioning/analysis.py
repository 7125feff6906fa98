"""Figures of a distributional-TD run on a conditioning schedule, from its `simulation.npz`.

`value_at_time` (value at one moment across trials), `td_heatmaps` (TD error over trials and
time) and `value_animation` (V, r and TD error of each trial, as a GIF) each take the dict of
`load_simulation`. Predictors are coloured by a parameter (tau_eff, tau, gamma or lambda); any
of them may be distributed. tau is the drawn asymmetry alpha+ / (alpha+ + alpha-); the rates are
applied per step as alpha ** dt, so the asymmetry that sets each predictor's expectile is
tau_eff = alpha+^dt / (alpha+^dt + alpha-^dt), much closer to 0.5 when dt is small (drawn
0.3-0.8 is 0.50-0.53 at dt 0.1 s): figures colour by tau_eff. Every figure is written as PNG + SVG + the CSV of its data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from neurorl_cli.analysis.figures import STYLE, FigureFiles, new_figure, save, styled

TRAINING_KEY = "perf/cue_value_mean"
# The name backends.distributional_td writes (tested equal); not imported, since that imports torch.
SIMULATION = "simulation.npz"
PARAMS = ("tau_eff", "tau", "gamma", "lambda")  # what predictors can be coloured or grouped by
LABELS = {"tau_eff": "tau (effective, per step)", "tau": "tau (drawn)"}
LINE_CMAP = "jet"  # drl_sim's colouring of predictors
IMAGE_CMAP = "viridis"
PANEL_TOLERANCE = 0.01  # parameter values this close share a panel (drl_sim's matching)
MAX_PANELS = 12  # more distinct values than this is a continuous spread, not groups
MAX_FRAMES = 100
FRAME_DPI = 72


def load_simulation(run_dir: Path) -> dict:
    """The arrays of `<run_dir>/simulation.npz` as a dict of numpy values.

    Raises FileNotFoundError when the run has not written one (it is written when it completes)."""
    path = Path(run_dir) / SIMULATION
    if not path.is_file():
        raise FileNotFoundError(path)
    with np.load(path) as data:
        sim = {k: data[k] for k in data.files}
    power = float(sim.get("alpha_exponent", sim["dt"]))  # runs before alpha could be per step: dt
    plus, minus = np.asarray(sim["alpha_plus"], float) ** power, np.asarray(sim["alpha_minus"], float) ** power
    sim["tau_eff"] = plus / (plus + minus)
    return sim


# -- helpers -------------------------------------------------------------------------------------


def time_index(sim: dict, time_s: float) -> int:
    """The step of an event at `time_s` seconds, as the schedule places it (round(t/dt) - 1)."""
    index = round(float(time_s) / float(sim["dt"])) - 1
    steps = sim["V"].shape[2]
    if not 0 <= index < steps:
        raise ValueError(f"time {time_s} s is outside the trial (dt {float(sim['dt'])} s, {steps} steps)")
    return index


def cue_time(sim: dict, trial_type: int) -> float:
    """The cue time (s) of a trial type, such that time_index gives back its cue step."""
    return (int(sim["cue_index"][trial_type]) + 1) * float(sim["dt"])


def trials_of_type(sim: dict, trial_type: int) -> np.ndarray:
    """Session indices (0-based) of the trials of `trial_type`."""
    n_types = len(sim["cue_index"])
    if not 0 <= trial_type < n_types:
        raise ValueError(f"trial type {trial_type}: the schedule has types 0-{n_types - 1}")
    rows = np.flatnonzero(sim["types"] == trial_type)
    if not len(rows):
        raise ValueError(f"no trial of type {trial_type} was drawn in this run")
    return rows


def _param(sim: dict, name: str) -> np.ndarray:
    if name not in PARAMS:
        raise ValueError(f"{name!r}: predictors can be coloured or grouped by {', '.join(PARAMS)}")
    return np.asarray(sim[name], dtype=float)


def param_groups(values: np.ndarray, tolerance: float = PANEL_TOLERANCE) -> list[float]:
    """Distinct values, where values within `tolerance` of a group's first (smallest) value join it."""
    groups: list[float] = []
    for v in np.sort(values):
        if not groups or v - groups[-1] > tolerance:
            groups.append(float(v))
    return groups


def is_distributed(sim: dict, name: str) -> bool:
    return len(param_groups(_param(sim, name))) > 1


def _colouring(values: np.ndarray):
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-12:  # one shared value: still a valid scale
        lo, hi = lo - 0.5, hi + 0.5
    return Normalize(lo, hi), colormaps[LINE_CMAP]


def _colourbar(fig, axes, norm, cmap, label: str) -> None:
    from matplotlib.cm import ScalarMappable

    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, label=label)


def describe(sim: dict, p: int) -> str:
    return f"tau {float(sim['tau'][p]):.2f} (effective {float(sim['tau_eff'][p]):.3f}), gamma {float(sim['gamma'][p]):.2f}, lambda {float(sim['lambda'][p]):.2f}"


def predictors_by_tau(sim: dict, count: int = 3) -> list[int]:
    """`count` predictors spread over tau: the lowest, the highest and evenly between (tau and
    tau_eff order predictors alike: both grow with alpha+ / alpha-)."""
    order = np.argsort(np.asarray(sim["tau"]), kind="stable")
    picks = np.unique(np.round(np.linspace(0, len(order) - 1, min(count, len(order)))).astype(int))
    return [int(order[i]) for i in picks]


def _params_frame(sim: dict, predictors) -> pd.DataFrame:
    keys = ("alpha_plus", "alpha_minus", "tau", "tau_eff", "gamma", "lambda")
    return pd.DataFrame({"predictor": list(predictors), **{k: np.asarray(sim[k], float)[list(predictors)] for k in keys}})


# -- figures ---------------------------------------------------------------------------------------


@styled
def value_at_time(sim: dict, trial_type: int, time_s: float, colour_by: str = "tau_eff", panel_by: str | None = None,
                  out_dir: Path = Path("."), stem: str = "value_at_time") -> FigureFiles:
    """Each predictor's value at `time_s` seconds over the trials of `trial_type`.

    Lines are coloured by `colour_by`; with `panel_by`, one panel per distinct value of that
    parameter (values within 0.01 share one). The CSV holds one row per predictor and trial."""
    rows = trials_of_type(sim, trial_type)
    index = time_index(sim, time_s)
    colour = _param(sim, colour_by)
    n = sim["V"].shape[0]
    if panel_by is None:
        groups, member = [None], np.zeros(n, dtype=int)
    else:
        if panel_by == colour_by:
            raise ValueError(f"colour_by and panel_by are both {colour_by!r}")
        values = _param(sim, panel_by)
        groups = param_groups(values)
        if len(groups) > MAX_PANELS:
            raise ValueError(f"{panel_by} takes {len(groups)} distinct values: panels need a discrete parameter")
        member = np.searchsorted(np.asarray(groups) + PANEL_TOLERANCE + 1e-12, values)
    norm, cmap = _colouring(colour)
    fig, axes = new_figure(1, len(groups), size=(3.4 * len(groups) + 1.4, 3.8), sharey=True)
    trial_numbers = rows + 1
    values_at = np.asarray(sim["V"])[:, rows, index]
    for g, group in enumerate(groups):
        ax = axes[0, g]
        for p in np.flatnonzero(member == g):
            ax.plot(trial_numbers, values_at[p], lw=0.9, color=cmap(norm(colour[p])))
        ax.set_xlabel(f"trial (type {trial_type})")
        ax.set_title(f"{panel_by} = {group:.2f} ({int((member == g).sum())} predictors)" if group is not None else f"value at {time_s:g} s", fontsize="medium")
    axes[0, 0].set_ylabel(f"V at {time_s:g} s")
    _colourbar(fig, axes[0, :].tolist(), norm, cmap, LABELS.get(colour_by, colour_by))
    table = pd.DataFrame({
        "predictor": np.repeat(np.arange(n), len(rows)),
        "trial": np.tile(rows, n),
        "type_trial": np.tile(np.arange(len(rows)), n),
        "value": values_at.reshape(-1),
        "panel": np.repeat([groups[m] if groups[m] is not None else np.nan for m in member], len(rows)),
    }).merge(_params_frame(sim, range(n)), on="predictor")
    table.insert(3, "time_s", float(time_s))
    return save(fig, table, out_dir, stem)


@styled
def td_heatmaps(sim: dict, trial_type: int, predictors: Sequence[int], out_dir: Path = Path("."),
                stem: str = "td_heatmaps") -> FigureFiles:
    """TD error over trials of `trial_type` (rows) and time (s), one image per chosen predictor.

    The CSV holds one row per predictor, trial and step."""
    rows = trials_of_type(sim, trial_type)
    predictors = [int(p) for p in predictors]
    n = sim["deltas"].shape[0]
    if not predictors or any(not 0 <= p < n for p in predictors):
        raise ValueError(f"predictors {predictors}: choose among 0-{n - 1}")
    T = np.asarray(sim["T"], float)[: sim["deltas"].shape[2]]
    dt = float(sim["dt"])
    fig, axes = new_figure(1, len(predictors), size=(3.6 * len(predictors), 3.8))
    parts = []
    for ax, p in zip(axes[0], predictors):
        image = np.asarray(sim["deltas"])[p, rows]
        shown = ax.imshow(image, aspect="auto", origin="lower", cmap=IMAGE_CMAP, interpolation="nearest",
                          extent=(T[0] - dt / 2, T[-1] + dt / 2, 0.5, len(rows) + 0.5))
        fig.colorbar(shown, ax=ax, label="TD error")
        ax.set_title(f"predictor {p}\n{describe(sim, p)}", fontsize="small")
        ax.set_xlabel("time (s)")
        parts.append(pd.DataFrame({
            "predictor": p, "trial": np.repeat(rows, len(T)), "type_trial": np.repeat(np.arange(len(rows)), len(T)),
            "step": np.tile(np.arange(len(T)), len(rows)), "time_s": np.tile(T, len(rows)), "delta": image.reshape(-1),
        }))
    axes[0, 0].set_ylabel(f"trial of type {trial_type}")
    return save(fig, pd.concat(parts, ignore_index=True), out_dir, stem)


# -- animation -----------------------------------------------------------------------------------


def animation_trials(sim: dict, trial_type: int, trials: Sequence[int] | None = None, max_frames: int = MAX_FRAMES) -> np.ndarray:
    """Session indices to animate: `trials` (or every trial of the type), evenly thinned to
    at most `max_frames`, the first and last always kept."""
    rows = trials_of_type(sim, trial_type)
    if trials is not None:
        chosen = np.asarray(list(trials), dtype=int)
        strangers = np.setdiff1d(chosen, rows)
        if len(strangers):
            raise ValueError(f"trials {strangers.tolist()[:5]} are not of type {trial_type}")
        rows = chosen
    if len(rows) > max_frames:
        rows = rows[np.unique(np.round(np.linspace(0, len(rows) - 1, max_frames)).astype(int))]
    return rows


def _limits(data: np.ndarray, pad: float = 0.08) -> tuple[float, float]:
    """Fixed y-limits over all frames: the data's range with 0 included, padded; never empty."""
    lo, hi = min(0.0, float(np.nanmin(data))), max(0.0, float(np.nanmax(data)))
    span = hi - lo or 1.0
    return lo - pad * span, hi + pad * span


class _Animator:
    """Draws the V / r / TD-error panels on three axes and moves them from trial to trial."""

    def __init__(self, fig, axes, sim: dict, trial_type: int, rows: np.ndarray, title: str):
        self.sim, self.rows, self.title, self.fig, self.trial_type = sim, rows, title, fig, trial_type
        T = np.asarray(sim["T"], float)
        V, r, deltas = np.asarray(sim["V"]), np.asarray(sim["r"]), np.asarray(sim["deltas"])
        self.V, self.r, self.deltas = V[:, rows], r[rows], deltas[:, rows]
        norm, cmap = _colouring(np.asarray(sim["tau_eff"], float))
        ax_v, ax_r, ax_d = axes
        colours = [cmap(norm(t)) for t in np.asarray(sim["tau_eff"], float)]
        self.v_lines = [ax_v.plot(T, self.V[p, 0], lw=0.9, color=c)[0] for p, c in enumerate(colours)]
        self.r_line = ax_r.plot(T, self.r[0], lw=1.2, color="k")[0]
        self.d_lines = [ax_d.plot(T[:-1], self.deltas[p, 0], lw=0.9, color=c)[0] for p, c in enumerate(colours)]
        for ax, data, label in ((ax_v, self.V, "V(t)"), (ax_r, self.r, "r(t)"), (ax_d, self.deltas, "TD error")):
            ax.set_ylim(*_limits(data))
            ax.set_ylabel(label)
            ax.axvline(T[int(sim["cue_index"][trial_type])], color="0.6", lw=0.8, ls="--")
        ax_d.set_xlabel("time (s)")
        ax_d.set_xlim(T[0], T[-1])
        _colourbar(fig, list(axes), norm, cmap, LABELS["tau_eff"])

    def __len__(self) -> int:
        return len(self.rows)

    def update(self, frame: int):
        for p, line in enumerate(self.v_lines):
            line.set_ydata(self.V[p, frame])
        self.r_line.set_ydata(self.r[frame])
        for p, line in enumerate(self.d_lines):
            line.set_ydata(self.deltas[p, frame])
        self.fig.suptitle(f"{_prefix(self.title)}trial {int(self.rows[frame]) + 1} (type {self.trial_type})", fontsize="medium")
        return [*self.v_lines, self.r_line, *self.d_lines]


def render_animation(sim: dict, trial_type: int, rows: np.ndarray, title: str = "") -> list[np.ndarray]:
    """RGB frames (Agg, no display), one per trial in `rows`."""
    import matplotlib

    frames = []
    with matplotlib.rc_context(STYLE):
        fig, axes = new_figure(3, 1, size=(7.2, 6.0), sharex=True)
        animator = _Animator(fig, axes[:, 0], sim, trial_type, rows, title)
        fig.set_dpi(FRAME_DPI)
        for frame in range(len(animator)):
            animator.update(frame)
            fig.canvas.draw()
            if frame == 0:  # the layout is settled: re-solving it for every frame doubles the time
                fig.set_layout_engine("none")
            frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    return frames


def value_animation(sim: dict, trial_type: int, out_path: Path, trials: Sequence[int] | None = None, fps: float = 7,
                    max_frames: int = MAX_FRAMES, title: str = "") -> Path:
    """An animated GIF, one frame per trial of `trial_type` (thinned to `max_frames`): V(t) of
    every predictor (coloured by its effective tau), the reward r(t) and the TD errors, x in seconds."""
    from neurorl_cli.analysis.watch import write_gif

    rows = animation_trials(sim, trial_type, trials, max_frames)
    frames = render_animation(sim, trial_type, rows, title)
    return write_gif(frames, Path(out_path), int(round(1000 / fps)))


def show_animation_live(sim: dict, trial_type: int, trials: Sequence[int] | None = None, fps: float = 7,
                        max_frames: int = MAX_FRAMES, title: str = "") -> None:
    """The same animation in a window (needs a display; checked by the caller)."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    rows = animation_trials(sim, trial_type, trials, max_frames)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(3, 1, figsize=(8, 6.6), sharex=True, layout="constrained")
        animator = _Animator(fig, axes, sim, trial_type, rows, title)
        # Kept in a name: an animation nobody references is garbage-collected and stops.
        animation = FuncAnimation(fig, animator.update, frames=len(animator), interval=1000 / fps, repeat=False)
        plt.show()
        del animation


def _prefix(title: str) -> str:
    return f"{title}, " if title else ""
