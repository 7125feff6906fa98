"""Showing frames: as an animated GIF (written atomically) or in a window."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from neurorl_cli.atomic import write_with


def write_gif(frames: list[np.ndarray], target: Path, duration_ms: int) -> Path:
    import imageio.v3 as iio

    def writer(tmp: Path) -> None:
        iio.imwrite(tmp, frames, extension=".gif", duration=duration_ms, loop=0)
        if shutil.which("gifsicle"):  # optional: a smaller file; the unoptimised one is fine
            subprocess.run(["gifsicle", "-O3", "--batch", str(tmp)], check=False, capture_output=True)

    write_with(Path(target), writer, suffix=".gif")
    return Path(target)


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def show_frames_live(frames: list[np.ndarray], duration_ms: int) -> None:
    """Play pre-rendered frames in a window (needs a display; checked by the caller)."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    fig, ax = plt.subplots(figsize=(frames[0].shape[1] / 72, frames[0].shape[0] / 72))
    ax.axis("off")
    image = ax.imshow(frames[0])
    animation = FuncAnimation(fig, lambda i: image.set_data(frames[i]), frames=len(frames), interval=duration_ms, repeat=False)
    plt.show()
    del animation
