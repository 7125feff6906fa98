"""Where firefly TD3's training time goes, and how it scales with `replay_period`.

    python bench/td3_updates.py [--trials 384] [--periods 4,32] [--runs 3]

Trains td3-modular (the catalog's Actor3 x Critic5) on the firefly task in this process, one
torch thread, phase I cut short (`phase2_rewarded=0`, `warmup_trials=16`), once per period and
run, alternating the periods. For each it reports the wall time, the number of updates
(`replay_period` counts environment steps per critic update, so updates = steps / period), the
time per update, and the share of the wall time spent in updates; medians over the runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def one(period: int, trials: int) -> dict[str, float]:
    import torch

    from neurorl_cli import catalog
    from neurorl_cli.engines.native import td3
    from neurorl_cli.interfaces import RunConfig
    from neurorl_cli.runlog import RunLog

    torch.set_num_threads(1)
    (config,) = catalog.resolve(
        catalog.load_task("firefly"), catalog.load_model("td3-modular"),
        ["model.phase2_rewarded=0", "model.warmup_trials=16", f"model.replay_period={period}"],
        trials=trials, checkpoint_every=trials)
    timed = {"updates": 0, "seconds": 0.0}
    update = td3.TD3.update

    def counted(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return update(self, *args, **kwargs)
        finally:
            timed["updates"] += 1
            timed["seconds"] += time.perf_counter() - start

    td3.TD3.update = counted
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run = RunConfig(run_id=1, seed=0, attempt=1, config=config, run_dir=tmp, device="cpu", threads=1)
            start = time.perf_counter()
            td3.TD3Backend().train(run, RunLog(Path(tmp), heartbeat_every=0))
            wall = time.perf_counter() - start
    finally:
        td3.TD3.update = update
    return {"wall_s": wall, "updates": timed["updates"], "ms_per_update": 1000 * timed["seconds"] / max(timed["updates"], 1),
            "update_share": timed["seconds"] / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=384)
    parser.add_argument("--periods", default="4,32")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    periods = [int(p) for p in args.periods.split(",")]
    results: dict[int, list[dict]] = {p: [] for p in periods}
    for _ in range(args.runs):
        for period in periods:  # alternated, so drift in the machine's speed hits every period alike
            results[period].append(one(period, args.trials))
    print(f"td3-modular on firefly, {args.trials} trials, 1 thread, medians of {args.runs} runs")
    print(f"{'period':>6} {'wall s':>8} {'updates':>8} {'ms/update':>10} {'in updates':>11}")
    for period, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(f"{period:>6} {med['wall_s']:>8.1f} {med['updates']:>8.0f} {med['ms_per_update']:>10.1f} {med['update_share']:>10.0%}")


if __name__ == "__main__":
    main()
