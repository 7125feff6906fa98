"""Doom episodes as frames: the full screen with the agent's health, action and reward under it."""

from __future__ import annotations

import numpy as np

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
