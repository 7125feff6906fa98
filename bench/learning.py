"""Learning check: recurrent-ppo on perceptual-decision-making through neurorl, beside
sb3-contrib's RecurrentPPO called directly as in the NeuroGym tutorial, same budget.

Both sides are scored by the same evaluation (the deterministic policy, recurrent state
carried, the protocol's 500 trials from one fixed seed) on the final policy, so the only
difference is who ran the training.

    python bench/learning.py [--steps 100000] [--seeds 0-2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np


def direct_sb3(seed: int, steps: int, out: str) -> str:
    """The tutorial, by hand: PassReward-wrapped task, DummyVecEnv, RecurrentPPO defaults."""
    import gymnasium as gym
    import neurogym as ngym  # noqa: F401  (registers the tasks)
    import torch
    from neurogym.wrappers import PassReward
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.utils import set_random_seed
    from stable_baselines3.common.vec_env import DummyVecEnv

    torch.set_num_threads(1)
    set_random_seed(seed)
    timing = {"fixation": ("constant", 300), "stimulus": ("constant", 500), "decision": ("constant", 300)}

    class SeedlessReset(gym.Wrapper):
        """sb3 2.9's DummyVecEnv calls reset(seed=...), which neurogym 1.0.8's PassReward
        does not take: the tutorial as written stops with a TypeError without this."""

        def reset(self, *, seed=None, options=None):
            return self.env.reset(options=options)

    def make():
        env = SeedlessReset(PassReward(gym.make("PerceptualDecisionMaking-v0", dt=100, timing=timing)))
        env.unwrapped.seed(seed)
        return env

    model = RecurrentPPO("MlpLstmPolicy", DummyVecEnv([make]), verbose=0, seed=seed)
    model.learn(total_timesteps=steps)
    model.save(out)
    return out + ".zip"


def score(checkpoint: str) -> float:
    from neurorl_cli import catalog
    from neurorl_cli.engines.sb3.trainer import SB3Backend
    from neurorl_cli.families.neurogym.rollout import rollout

    (config,) = catalog.resolve(catalog.load_task("perceptual-decision-making"), catalog.load_model("recurrent-ppo"))
    protocol = config["task"]["protocols"]["default"]
    policy = SB3Backend().load_policy(config, Path(checkpoint))
    return rollout(policy, config["task"]["env"], protocol["trials"], seed=protocol["seed"]).metrics()["fraction_correct"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seeds", default="0-2")
    parser.add_argument("--work", help="Folder to keep (and reuse) the runs in; default a new temporary one.")
    args = parser.parse_args()
    from neurorl_cli.catalog import parse_seeds

    seeds = parse_seeds(args.seeds)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="neurorl-learning-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "NEURORL_HOME": str(work / "home")}
    neurorl = [sys.executable, "-m", "neurorl_cli"]
    # a completed run is not trained again, so --work makes a re-run cheap on our side
    subprocess.run([*neurorl, "train", "perceptual-decision-making", "recurrent-ppo", "--seeds", args.seeds,
                    "--steps", str(args.steps), "--jobs", "2", "--name", "learning"], env=env, check=True)
    runs = json.loads(subprocess.run([*neurorl, "runs", "list", "--json"], env=env, check=True,
                                     capture_output=True, text=True).stdout)
    ours = []
    for run in runs:
        final = sorted((Path(run["run_dir"]) / "checkpoints").glob("step_*.zip"))[-1]
        ours.append(score(str(final)))
    # the direct side is kept in --work too: a model already there is not trained again
    todo = [s for s in seeds if not (work / f"direct{s}-{args.steps}.zip").exists()]
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(direct_sb3, todo, [args.steps] * len(todo), [str(work / f"direct{s}-{args.steps}") for s in todo]))
    theirs = [score(str(work / f"direct{s}-{args.steps}.zip")) for s in seeds]
    for label, values in (("neurorl recurrent-ppo", ours), ("sb3-contrib directly", theirs)):
        print(f"{label:24s} fraction correct after {args.steps:,} steps, seeds {seeds}: "
              f"mean {np.mean(values):.3f}, range {min(values):.3f}-{max(values):.3f}  ({', '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
