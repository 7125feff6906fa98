"""`neurorl watch`: a trained policy acting over a few trials, as a GIF or a live window."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
from sqlmodel import Session

from neurorl_cli.atomic import write_with
from neurorl_cli.catalog import in_protocol_order
from neurorl_cli.errors import UserError
from neurorl_cli.registry import queries
from neurorl_cli.registry.models import Checkpoint, Experiment, Run
from neurorl_cli.analysis import panels
from neurorl_cli.analysis.figures import STYLE, new_figure

FRAME_DPI = 72


def choose_checkpoint(session: Session, run: Run, which: str, protocol: str | None = None) -> Checkpoint:
    """`best` (by its evaluations), `latest`, or a checkpoint step."""
    available = queries.checkpoints(session, run.id)
    if not available:
        raise UserError(f"run r{run.id} has no checkpoint yet")
    if which == "latest":
        return available[-1]
    if which == "best":
        best = queries.best_checkpoint(session, [run.id], protocol)
        if not best:
            raise UserError(f"run r{run.id} has no evaluated checkpoint{f' under {protocol}' if protocol else ''}: run `neurorl eval r{run.id} --all-checkpoints` first")
        # Several protocols: the one named first in the task spec picks.
        task = session.get_one(Experiment, run.experiment_id).config["task"]
        first = in_protocol_order(task, {protocol for _, protocol in best})[0]
        return next(ck for (_, protocol), (_, ck) in best.items() if protocol == first)
    steps = [c.step for c in available]
    if not which.isdigit() or int(which) not in steps:
        raise UserError(f"--checkpoint {which}: run r{run.id} has checkpoints at steps {', '.join(map(str, steps))} (or use best / latest)")
    return available[steps.index(int(which))]


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


def show_live(records: list[dict], ob_names: list[str], title: str, duration_ms: int) -> None:
    """Animate in a window (needs a display; checked by the caller)."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    table = panels.records_table(records, ob_names)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(4, 1, figsize=(9, 7), sharex=True, layout="constrained")

        def update(upto: int):
            for ax in axes:
                ax.clear()
            panels.draw(axes, table, upto=upto)
            fig.suptitle(title, fontsize="medium")

        # Kept in a name: an animation nobody references is garbage-collected and stops.
        animation = FuncAnimation(fig, update, frames=range(1, len(table) + 1), interval=duration_ms, repeat=False)
        plt.show()
        del animation


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


# ----------------------------------------------------------------------------- Doom

DOOM_TIC_MS = 1000 / 35  # Doom runs at 35 tics per second
DOOM_PANEL = 30  # pixels of text under the screen
TURN_NAMES = ("", "left", "right")
MOVE_NAMES = ("", "forward", "backward")


def doom_action_name(action, buttons: list[str] | None = None) -> str:
    """`turn x move` in words; with the scenario's buttons (DoomEnv.buttons) when the axes are not
    turning and walking (basic: strafing and attack)."""
    turn, move = int(action[0]), int(action[1])
    if buttons and len(buttons) >= 3 and buttons[:3] != ["TURN_LEFT", "TURN_RIGHT", "MOVE_FORWARD"]:
        names = [b.lower().replace("_", " ") for b in buttons]
        words = [names[turn - 1] if turn else "", names[2 + move - 1] if move and 2 + move - 1 < len(names) else ""]
    else:
        words = [f"turn {TURN_NAMES[turn]}" if turn else "", MOVE_NAMES[move]]
    return " + ".join(w for w in words if w) or "nothing"


def doom_frames(steps: list[dict], buttons: list[str] | None = None) -> list[np.ndarray]:
    """The full screen after each step with a panel under it: health, action, reward, episode."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=10)
    frames = []
    for step in steps:
        screen = np.asarray(step["screen"], dtype=np.uint8)
        h, w = screen.shape[:2]
        image = Image.new("RGB", (w, h + DOOM_PANEL), (20, 20, 20))
        image.paste(Image.fromarray(screen), (0, 0))
        draw = ImageDraw.Draw(image)
        health = step["info"].get("health")
        top = f"HP {health:.0f}" if health is not None else "HP ?"
        top += f"   r {step['reward']:+.1f}   ep {step['episode'] + 1} t {step['t']}"
        draw.text((3, h + 2), top, fill=(255, 220, 120), font=font)
        draw.text((3, h + 15), doom_action_name(step["action"], buttons), fill=(200, 230, 255), font=font)
        frames.append(np.asarray(image))
    return frames
