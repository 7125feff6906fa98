"""neurorl's ViZDoom adapter (families/doom/env.py) against raw vizdoom stepping.

    python bench/doom_adapter.py [--scenario retinal_apple_gathering] [--steps 20000] [--runs 5]

Both sides play the same scenario from the same seed with the same random (turn, move) action
sequence, at frame skip 4 on a 160x120 RGB24 screen, and run in this process one after the other,
alternating, `--runs` times each. "raw" is what a user writes with vizdoom alone: make_action
with the button vector and `tics`, read the screen buffer, start a new episode when one ends.
"ours" is `DoomEnv.step`/`reset`: the same, plus the 128x72 area resize, HEALTH, the reward
shaping and the info dict. Before timing, the benchmark asserts that both games have the same
configuration (scenario, screen, format, buttons, timeout, frame skip) and that both sides
collected the same engine reward over the run, so they played the same episodes.
Printed: steps/s of each run, each side's median, and the median of the per-pair ratios ours/raw.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import timeit

import cv2
import numpy as np
import vizdoom as vzd

from neurorl_cli.families.doom.env import DoomEnv, _doom_ini, scenario_path

FRAME_SKIP = 4


def raw_game(scenario: str, buttons: list[str], seed: int) -> vzd.DoomGame:
    """The game as a user sets it up with vizdoom alone."""
    game = vzd.DoomGame()
    game.set_doom_config_path(_doom_ini())
    game.load_config(str(scenario_path(scenario)))
    game.set_screen_resolution(vzd.ScreenResolution.RES_160X120)
    game.set_screen_format(vzd.ScreenFormat.RGB24)
    game.set_mode(vzd.Mode.PLAYER)
    game.set_window_visible(False)
    game.set_available_buttons([getattr(vzd.Button, b) for b in buttons])
    game.set_seed(seed)
    game.init()
    return game


def describe(game: vzd.DoomGame) -> dict:
    return {
        "screen": (game.get_screen_width(), game.get_screen_height()), "format": str(game.get_screen_format()),
        "buttons": [b.name for b in game.get_available_buttons()], "timeout": game.get_episode_timeout(),
        "mode": str(game.get_mode()),
    }


def run_raw(game: vzd.DoomGame, vectors: list[list[float]], actions: np.ndarray, seed: int) -> tuple[float, float]:
    game.set_seed(seed)
    game.new_episode()
    total = 0.0
    start = time.perf_counter()
    for turn, move in actions:
        total += game.make_action(vectors[turn * 3 + move], FRAME_SKIP)
        if game.is_episode_finished():
            game.new_episode()
        state = game.get_state()
        screen = state.screen_buffer  # a user reads the screen to act on it
    elapsed = time.perf_counter() - start
    assert screen.shape == (120, 160, 3)
    return len(actions) / elapsed, total


def run_ours(env: DoomEnv, actions: np.ndarray, seed: int) -> tuple[float, float]:
    env.reset(seed=seed)
    total = 0.0
    start = time.perf_counter()
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        total += info["true_reward"]
        if terminated or truncated:
            obs, _ = env.reset()
    elapsed = time.perf_counter() - start
    assert obs.shape == (72, 128, 3)
    return len(actions) / elapsed, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = "retinal_apple_gathering" if _scenario_exists("retinal_apple_gathering") else "health_gathering"
    parser.add_argument("--scenario", default=default)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.runs < 3:
        parser.error("--runs must be at least 3")

    env = DoomEnv(args.scenario, frame_skip=FRAME_SKIP, seed=args.seed)
    game = raw_game(args.scenario, env.buttons, args.seed)
    ours_config, raw_config = describe(env.game), describe(game)
    assert ours_config == raw_config, f"configurations differ:\n ours {ours_config}\n raw  {raw_config}"
    assert env.frame_skip == FRAME_SKIP and env.size == (128, 72)
    actions = np.random.default_rng(args.seed).integers(0, 3, size=(args.steps, 2))
    vectors = env._button_lists  # the same button vector for each (turn, move) as the adapter sends

    results = {"raw": [], "ours": []}
    for i in range(args.runs):
        order = [("raw", lambda: run_raw(game, vectors, actions, args.seed)), ("ours", lambda: run_ours(env, actions, args.seed))]
        for name, fn in (order if i % 2 == 0 else order[::-1]):  # alternate which side goes first
            rate, total = fn()
            results[name].append((rate, total))
            print(f"run {i + 1} {name:4s} {rate:8.0f} steps/s  (engine reward {total:.2f})", flush=True)
    env.close()
    game.close()
    totals = {t for side in results.values() for _, t in side}
    assert len(totals) == 1, f"the two sides played different episodes: engine rewards {sorted(totals)}"
    raw = [r for r, _ in results["raw"]]
    ours = [r for r, _ in results["ours"]]
    ratios = [o / r for o, r in zip(ours, raw)]
    summary = {
        "scenario": args.scenario, "frame_skip": FRAME_SKIP, "screen": ours_config["screen"], "obs": [72, 128, 3],
        "steps_per_run": args.steps, "runs": args.runs, "cpus": os.cpu_count(),
        "raw_median_steps_per_s": round(statistics.median(raw)), "ours_median_steps_per_s": round(statistics.median(ours)),
        "median_ratio_ours_over_raw": round(statistics.median(ratios), 3),
    }
    # Where the adapter's time goes: its per-step overhead against the resize alone.
    overhead = statistics.median(1e6 / o - 1e6 / r for o, r in zip(ours, raw))
    screen = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    for name, flag in (("area", cv2.INTER_AREA), ("nearest", cv2.INTER_NEAREST)):
        seconds = min(timeit.repeat(lambda: cv2.resize(screen, (128, 72), interpolation=flag), number=2000, repeat=5))
        summary[f"resize_{name}_us"] = round(seconds / 2000 * 1e6, 1)
    summary["adapter_overhead_us_per_step"] = round(overhead, 1)
    print(f"median: raw {summary['raw_median_steps_per_s']} steps/s, ours {summary['ours_median_steps_per_s']} steps/s, "
          f"ratio ours/raw {summary['median_ratio_ours_over_raw']:.3f} (median of {args.runs} alternated pairs)")
    print(f"adapter overhead {overhead:.0f} us/step, of which the INTER_AREA resize is about {summary['resize_area_us']:.0f} us "
          f"(INTER_NEAREST would be {summary['resize_nearest_us']:.0f} us)")
    print(json.dumps(summary))


def _scenario_exists(name: str) -> bool:
    try:
        scenario_path(name)
        return True
    except Exception:
        return False


if __name__ == "__main__":
    main()
