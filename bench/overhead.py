"""Overhead of the whole `neurorl train` command against a whole plain-Python process making
the same RecurrentPPO call (bench/plain_recurrent_ppo.py), on the same task and budget.

Each round runs both, alternating which goes first; each neurorl run gets a fresh registry,
so it really trains. Both sides' configurations are compared before timing counts.

    python bench/overhead.py [--steps 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NO_EPISODE_END = 10**9


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, proc.stdout


def check_same_config(plain_out: str, home: Path, steps: int) -> None:
    plain = json.loads(plain_out.strip().splitlines()[-1])
    runs = json.loads(subprocess.run([sys.executable, "-m", "neurorl_cli", "runs", "show", "1", "--json"],
                                     env={**os.environ, "NEURORL_HOME": str(home)}, capture_output=True,
                                     text=True, check=True).stdout)
    model, task = runs["config"]["model"], runs["config"]["task"]
    ours = {**model["hyper"], "lstm_hidden_size": model["policy_kwargs"]["lstm_hidden_size"]}
    for key, value in plain["hyper"].items():
        assert abs(float(ours[key]) - float(value)) < 1e-12, f"{key}: neurorl {ours[key]} vs plain {value}"
    assert task["env"]["kwargs"]["dt"] == plain["dt"]
    timing = task["env"]["kwargs"]["timing"]
    assert [timing[p] for p in ("fixation", "stimulus", "decision")] == plain["timing_ms"]
    assert [w["name"] for w in task["env"]["wrappers"]] == ["PassReward"]
    assert model["algo"] == "RecurrentPPO" and model["n_envs"] == 1
    assert task["env"]["trials_per_episode"] == NO_EPISODE_END
    assert runs["steps"] == plain["timesteps"], (runs["steps"], plain["timesteps"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="neurorl-overhead-"))
    ours_t, plain_t = [], []
    for i in range(args.rounds):
        home = work / f"home{i}"
        env = {**os.environ, "NEURORL_HOME": str(home)}
        neurorl = [sys.executable, "-m", "neurorl_cli", "train", "perceptual-decision-making", "recurrent-ppo",
                   "--steps", str(args.steps), "--checkpoint-every", str(args.steps),
                   # the tutorial's stream of trials never ends an episode: the same here
                   "--set", f"task.trials_per_episode={NO_EPISODE_END}"]
        plain = [sys.executable, str(HERE / "plain_recurrent_ppo.py"), str(args.steps), str(work / f"plain{i}")]
        order = [("ours", neurorl), ("plain", plain)] if i % 2 == 0 else [("plain", plain), ("ours", neurorl)]
        for label, cmd in order:
            seconds, out = timed(cmd, env)
            (ours_t if label == "ours" else plain_t).append(seconds)
            if label == "plain":
                plain_out = out
            print(f"round {i}: {label:5s} {seconds:6.1f} s", flush=True)
        check_same_config(plain_out, home, args.steps)
    ratios = [o / p for o, p in zip(ours_t, plain_t)]
    print(f"neurorl train / plain RecurrentPPO script, {args.steps:,} steps: median ratio {statistics.median(ratios):.3f} "
          f"(neurorl median {statistics.median(ours_t):.1f} s, plain median {statistics.median(plain_t):.1f} s, "
          f"{args.rounds} runs each, alternated)")


if __name__ == "__main__":
    main()
