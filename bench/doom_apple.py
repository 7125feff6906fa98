"""Apple gathering: what retinal-simple learns in an affordable budget, against a random policy.

    python bench/doom_apple.py [--steps 300000] [--checkpoints 6] [--episodes 20] [--home DIR]

Trains `neurorl train apple-gathering retinal-simple` through the CLI (catalog settings: 2
workers x 10 envs, batch 2048) for `--steps` agent steps in a scratch registry, evaluates every
checkpoint under the `default` protocol (`--episodes` episodes, seeds protocol.seed + e, sampled
actions), and plays the same episodes (same seeds) with a uniformly random turn x move policy
through the same evaluation loop. Printed: true reward (the scenario's own, without the +1
shaping), health gathered and episode length per checkpoint, the random policy's, and the
paired differences of the last checkpoint against random over the same episodes, true reward
and health gathered (mean and a 95% bootstrap interval).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


class RandomPolicy:
    """Uniform over the 3 x 3 turn x move actions, the evaluation loop's policy interface."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def reset(self, n: int) -> None:
        self.n = n

    def episode_started(self, mask) -> None:  # no state to reset
        pass

    def act(self, obs, deterministic: bool = False):
        return self.rng.integers(0, 3, size=(len(obs), 2))


def _cli(home: Path, *args: str) -> None:
    env = {**os.environ, "NEURORL_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-m", "neurorl_cli", *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"neurorl {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")


def _bootstrap(diff: np.ndarray, seed: int = 0, n: int = 10_000) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = rng.choice(diff, size=(n, len(diff))).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--checkpoints", type=int, default=6)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--home", help="registry to train into (default: a fresh temporary one; one that already "
                                         "holds the run and its evaluations is reused, nothing is done twice)")
    args = parser.parse_args()

    from neurorl_cli.families.doom.env import evaluate

    home = Path(args.home or tempfile.mkdtemp(prefix="bench-apple-"))
    print(f"registry: {home}", flush=True)
    _cli(home, "train", "apple-gathering", "retinal-simple", "--steps", str(args.steps),
         "--checkpoint-every", str(args.steps // args.checkpoints), "--name", "apple")
    _cli(home, "eval", "apple", "--all-checkpoints", "--protocol", "default", "--trials", str(args.episodes))

    con = sqlite3.connect(home / "registry.db")
    config = json.loads(con.execute("SELECT config FROM experiment").fetchone()[0])
    checkpoints = con.execute(
        "SELECT c.id, c.step, e.metrics FROM evaluation e JOIN checkpoint c ON c.id = e.checkpoint_id "
        "WHERE e.protocol = 'default' ORDER BY c.step").fetchall()
    last_id = checkpoints[-1][0]
    trials = con.execute("SELECT t.reward, t.conditions FROM trial t JOIN evaluation e ON e.id = t.evaluation_id "
                         "WHERE e.checkpoint_id = ? AND e.protocol = 'default'", (last_id,)).fetchall()
    fps = con.execute("SELECT AVG(value) FROM metric WHERE key = 'train/steps_per_s'").fetchone()[0]
    train_minutes = con.execute("SELECT (julianday(ended) - julianday(started)) * 1440 FROM run").fetchone()[0]
    con.close()
    trained = {json.loads(c)["seed"]: (r, json.loads(c)["health_gathered"]) for r, c in trials}

    protocol = {**config["task"]["protocols"]["default"], "episodes": args.episodes}
    random_metrics, rows = evaluate(RandomPolicy(0), config["task"], protocol)
    chance = {r["conditions"]["seed"]: (r["reward"], r["conditions"]["health_gathered"]) for r in rows}

    keys = ("true_reward", "health_gathered", "items_picked", "episode_length")
    print(f"\ntrained {args.steps} agent steps in {train_minutes:.1f} min (mean {fps:.0f} steps/s)")
    print(f"{'checkpoint':>12} " + " ".join(f"{k:>16}" for k in keys))
    for _, step, metrics in checkpoints:
        m = json.loads(metrics)
        print(f"{step:>12} " + " ".join(f"{m[k]:>16.2f}" for k in keys))
    print(f"{'random':>12} " + " ".join(f"{random_metrics[k]:>16.2f}" for k in keys))
    seeds = sorted(set(trained) & set(chance))
    for k, name in enumerate(("true reward", "health gathered")):
        diff = np.array([trained[s][k] - chance[s][k] for s in seeds])
        low, high = _bootstrap(diff)
        print(f"last checkpoint - random, {name} over the same {len(seeds)} episodes: "
              f"{diff.mean():+.2f} (95% bootstrap interval {low:+.2f} to {high:+.2f})")

if __name__ == "__main__":
    main()
