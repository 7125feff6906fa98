"""NeuroGym trials as frames: the trial panels (observations, actions against ground truth,
rewards, performance) drawn up to each step."""

from __future__ import annotations

import numpy as np

from neurorl_cli.analysis.figures import STYLE, new_figure
from neurorl_cli.families.neurogym import panels

FRAME_DPI = 72


def frame_duration_ms(env_spec: dict) -> int:
    """One frame per environment step, at the task's own pace when it has a dt (ms)."""
    dt = env_spec.get("kwargs", {}).get("dt", 100)
    return int(min(500, max(50, dt)))


def render_frames(records: list[dict], ob_names: list[str], title: str) -> list[np.ndarray]:
    import matplotlib

    table = panels.records_table(records, ob_names)
    frames = []
    with matplotlib.rc_context(STYLE):
        fig, axes = new_figure(4, 1, size=(8.0, 6.4), sharex=True)
        for upto in range(1, len(table) + 1):
            for ax in axes[:, 0]:
                ax.clear()
            panels.draw(axes[:, 0], table, upto=upto)
            fig.suptitle(title, fontsize="medium")
            fig.set_dpi(FRAME_DPI)
            fig.canvas.draw()
            frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    return frames
