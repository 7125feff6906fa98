"""Vectorised distributional TD(lambda) (`simulate`, all predictors at once in torch) against the
same rule as plain per-predictor, per-trial, per-step loops (`simulate_loop`, numpy float64).

Both sides get the very same trials and parameters; their values are compared on the trials
the loop ran, and no ratio is printed unless they agree. Runs alternate which side goes first. When the loop would
take too long for all trials, it runs the first `--loop-trials` and its time is scaled linearly
(its cost per trial is constant: the same work every trial), which the output says.

    python bench/distributional_td.py [--predictors 200] [--trials 1000] [--runs 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from neurorl_cli.engines.native.distributional_td import SMALL_TRIAL_WORK, draw_params, simulate, simulate_loop
from neurorl_cli.families.conditioning.schedule import Schedule, build

LOOP_SECONDS_PER_RUN = 120  # longer than this and the loop runs fewer trials, scaled linearly

# drl_sim's example: cue at 2 s, the Matias variable reward at 6 s, dt 0.1 s; 70 steps.
SCHEDULE = {"dt": 0.1, "duration": 6.9, "trial_types": [{"probability": 1.0, "cue_time": 2.0, "rewards": [{
    "time": 6.0, "size": {"kind": "discrete", "values": [0.1, 0.3, 1.2, 2.5, 5.0, 10.0, 20.0],
                          "probabilities": [0.066, 0.091, 0.148, 0.155, 0.312, 0.151, 0.077]}}]}]}
HYPER = {"alpha": {"low": 0.3, "high": 0.8}, "gamma": [0.3, 0.6, 0.8], "lambda": {"low": 0.1, "high": 0.9}}


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--predictors", type=int, default=200)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--loop-trials", type=int, default=None, help="default: as many as fit in ~2 minutes")
    args = parser.parse_args()

    schedule = Schedule.model_validate(SCHEDULE)
    trials = build(schedule, args.trials, seed=0)  # float32, as training runs
    params = draw_params({"predictors": args.predictors, **HYPER}, None, torch.Generator().manual_seed(0))
    trials_dev = trials.to(args.device)

    # Calibrate the loop on a few trials to choose how many it can run per round.
    probe = 5
    probe_s, _ = timed(lambda: simulate_loop(trials, params, schedule.dt, stop=probe))
    loop_trials = args.loop_trials or max(probe, min(args.trials, int(LOOP_SECONDS_PER_RUN / (probe_s / probe))))

    def vectorised():
        sync(args.device)
        out = simulate(trials_dev, params, schedule.dt)
        sync(args.device)
        return out

    def loop():
        return simulate_loop(trials, params, schedule.dt, stop=loop_trials)

    assert schedule.steps == 70 and trials.x.shape[1] == 70
    simulate(trials_dev, params, schedule.dt, stop=5)  # warm-up: first-call allocations are not the rule's cost

    vec_s, loop_s, outputs = [], [], {}
    for run in range(args.runs):
        sides = [("vectorised", vectorised), ("loop", loop)]
        for name, fn in sides if run % 2 == 0 else sides[::-1]:
            seconds, out = timed(fn)
            (vec_s if name == "vectorised" else loop_s).append(seconds)
            outputs.setdefault(name, out[0])

    # Same configuration: the same trials and parameters, so the values agree where both ran.
    V, V_loop = outputs["vectorised"], outputs["loop"]
    assert V.shape == (args.predictors, args.trials, 70) and V_loop.shape == (args.predictors, loop_trials, 70)
    error = float(np.max(np.abs(V[:, :loop_trials].cpu().double().numpy() - V_loop)))
    assert error < 1e-3 * max(1.0, float(np.abs(V_loop).max())), f"the two sides disagree by {error}"
    scale = args.trials / loop_trials
    loop_full = [s * scale for s in loop_s]
    ratios = [l / v for l, v in zip(loop_full, vec_s)]
    print(json.dumps({
        "config": {"predictors": args.predictors, "trials": args.trials, "steps": schedule.steps,
                   "device": args.device, "vectorised_dtype": str(trials.x.dtype), "loop_dtype": "float64",
                   "torch_threads_simulate_uses": 1 if args.device == "cpu" and args.predictors * 70 * 70 < SMALL_TRIAL_WORK
                   else torch.get_num_threads(), "max_abs_value_difference": error},
        "loop_trials_run": loop_trials,
        "loop_scaled_linearly": scale != 1,
        "vectorised_s": [round(s, 3) for s in vec_s],
        "loop_s_measured": [round(s, 2) for s in loop_s],
        "loop_s_for_all_trials": [round(s, 1) for s in loop_full],
        "median_speed_ratio": round(statistics.median(ratios), 1),
    }, indent=2))
    if scale != 1:
        print(f"note: the loop ran {loop_trials} of {args.trials} trials per run; its times are scaled by {scale:.2f}")


if __name__ == "__main__":
    main()
