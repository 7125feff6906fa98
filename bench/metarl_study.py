"""The meta-RL results at full power: 16 seeds of meta-a2c-lstm at the catalog's settings.

    python bench/metarl_study.py harlow   [--seeds 0-15] [--home DIR]
    python bench/metarl_study.py two-step [--seeds 0-15] [--home DIR]

Trains the seeds as the CLI does by default (one seed group per worker), evaluates every
checkpoint, and prints per seed:

- harlow: held-out accuracy on trials 2-5 at the last checkpoint (trial 6 is left out: counting
  sides answers it), and the first checkpoint whose score passed 0.9; then the trials and the
  wall-clock time until every seed had passed 0.9. A group trains its seeds in lockstep, so the
  time of a checkpoint is the run's training time scaled by its step (start-up excluded).
- two-step: the model-based index (reward x transition interaction of the stay probabilities)
  at the last checkpoint on 6,000 trials, and how many seeds exceed 0.2.

With --home the registry is kept (for `neurorl report`, `neurorl ui`); it must not hold the study yet.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import cli  # noqa: E402  (the subprocess call a user makes)
from tests.learning import HARLOW_POSITIONS, TWO_STEP_EVAL_TRIALS  # noqa: E402

PASS = 0.9  # Harlow accuracy counted as learned
SIGNATURE = 0.2  # two-step model-based index counted as the signature


def train_and_evaluate(task: str, seeds: str, home: Path, eval_args: list[str]) -> float:
    name = f"{task}-study"
    started = time.perf_counter()
    cli("train", task, "meta-a2c-lstm", "--seeds", seeds, "--name", name, home=home, check=True, timeout=4 * 3600)
    trained = time.perf_counter() - started
    cli("eval", name, "--all-checkpoints", *eval_args, home=home, check=True, timeout=4 * 3600)
    return trained


def frames(home: Path, task: str, protocol: str | None):
    import os

    os.environ["NEURORL_HOME"] = str(home)
    from neurorl_cli import api

    registry = api.open()
    name = f"{task}-study"
    return registry.runs(name), registry.evaluations(name, protocol=protocol)


def harlow(home: Path, seeds: str) -> None:
    trained = train_and_evaluate("harlow", seeds, home, ["--protocol", "held-out"])
    runs, evals = frames(home, "harlow", "held-out")
    evals["trials_2_5"] = evals[[f"accuracy_trial_{k}" for k in HARLOW_POSITIONS]].mean(axis=1)
    last_step = evals["step"].max()
    passed_at = []
    print(f"{'seed':>4} {'trials 2-5 at end':>18} {'first > 0.9 at trial':>21} {'training s':>11}")
    for seed, rows in evals.groupby("seed"):
        rows = rows.sort_values("step")
        final = float(rows["trials_2_5"].iloc[-1])
        over = rows[rows["trials_2_5"] > PASS]
        first = int(over["step"].iloc[0]) if len(over) else None
        run = runs[runs["seed"] == seed].iloc[-1]
        seconds = (run["ended"] - run["started"]).total_seconds()
        passed_at.append((first, None if first is None else seconds * first / last_step))
        print(f"{seed:>4} {final:>18.3f} {first if first is not None else 'never':>21} {seconds:>11.0f}")
    finals = evals[evals["step"] == last_step]["trials_2_5"]
    print(f"harlow, {len(finals)} seeds: held-out trials 2-5 at the end mean {finals.mean():.3f}, "
          f"min {finals.min():.3f}, max {finals.max():.3f}; group trained in {trained:.0f} s wall (CLI, start-up included)")
    if all(first is not None for first, _ in passed_at):
        trials = max(first for first, _ in passed_at)
        seconds = max(s for _, s in passed_at)
        print(f"every seed passed {PASS} by trial {trials:,} (checkpoint), about {seconds:.0f} s of training")
    else:
        print(f"{sum(first is None for first, _ in passed_at)} seed(s) never passed {PASS}")


def two_step(home: Path, seeds: str) -> None:
    trained = train_and_evaluate("two-step", seeds, home, ["--trials", TWO_STEP_EVAL_TRIALS])
    _, evals = frames(home, "two-step", None)
    last = evals[evals["step"] == evals["step"].max()].sort_values("seed")
    for _, row in last.iterrows():
        print(f"seed {row['seed']:>3}: model-based index {row['model_based_index']:.3f}")
    index = last["model_based_index"].to_numpy()
    print(f"two-step, {len(index)} seeds: {int((index > SIGNATURE).sum())} show the model-based signature "
          f"(index > {SIGNATURE}); mean {np.mean(index):.3f}; trained in {trained:.0f} s wall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("task", choices=["harlow", "two-step"])
    parser.add_argument("--seeds", default="0-15")
    parser.add_argument("--home", type=Path, help="registry to keep (default: a temporary one)")
    args = parser.parse_args()
    study = harlow if args.task == "harlow" else two_step
    if args.home:
        study(args.home, args.seeds)
        return
    with tempfile.TemporaryDirectory() as tmp:
        study(Path(tmp) / "home", args.seeds)


if __name__ == "__main__":
    main()
