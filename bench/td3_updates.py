"""Where firefly TD3's training time goes, and how it scales with `replay_period`.

    python bench/td3_updates.py [--trials 384] [--periods 4,32] [--runs 3]
    python bench/td3_updates.py --flops      # how close one update runs to this core's peak

Trains td3-modular (the catalog's Actor3 x Critic5) on the firefly task in this process, one
torch thread, phase I cut short (`phase2_rewarded=0`, `warmup_trials=16`), once per period and
run, alternating the periods. For each it reports the wall time, the number of updates
(`replay_period` counts environment steps per critic update, so updates = steps / period), the
time per update, and the share of the wall time spent in updates; medians over the runs.

With --flops: the floating-point work of one update of the catalog's td3-modular (batch 16,
trajectories of 10-40 steps), counted by torch's FlopCounterMode on the seed-stacked nets of a
group of one (batched products it counts; nn.LSTM's fused kernel it does not), the time of the
solo update, and the rate of a large matrix product on one thread: an upper bound on what
batching seeds together could gain on this CPU.
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


def flops(repeats: int = 20) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from neurorl_cli import catalog
    from neurorl_cli.engines.native import td3
    from neurorl_cli.engines.native.td3_group import GroupTD3

    torch.set_num_threads(1)
    (config,) = catalog.resolve(catalog.load_task("firefly"), catalog.load_model("td3-modular"), [])
    hyper = td3.Hyper(**config["model"]["hyper"])
    agent = td3.TD3(hyper, "cpu")
    group = GroupTD3([td3.TD3(hyper, "cpu")])
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(4096, 1024), torch.randn(1024, 1024)
    a @ b
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    peak = 2 * 4096 * 1024 * 1024 * 10 / (time.perf_counter() - start) / 1e9
    print(f"one thread: a 4096x1024x1024 matrix product runs at {peak:.0f} GFLOP/s")
    print(f"{'T':>4} {'GFLOP/update':>13} {'solo ms':>8} {'GFLOP/s':>8} {'of peak':>8}")
    for T in (10, 20, 30, 40):
        batch = {"obs": torch.randn(T, hyper.batch_size, 6), "action": torch.rand(T, hyper.batch_size, 2) * 2 - 1,
                 "reward": torch.zeros(T, hyper.batch_size), "done": torch.zeros(T, hyper.batch_size)}
        batch["done"][-1] = 1
        counter = FlopCounterMode(display=False)
        with counter:  # two updates: the actor steps every second one
            for _ in range(2):
                group.update([batch], [torch.randn(T, hyper.batch_size, 2) * hyper.target_noise])
        work = counter.get_total_flops() / 2 / 1e9
        for _ in range(3):
            agent.update(batch, generator)
        start = time.perf_counter()
        for _ in range(repeats):
            agent.update(batch, generator)
        seconds = (time.perf_counter() - start) / repeats
        print(f"{T:>4} {work:>13.2f} {1000 * seconds:>8.1f} {work / seconds:>8.0f} {work / seconds / peak:>8.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=384)
    parser.add_argument("--periods", default="4,32")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--flops", action="store_true", help="the work of one update against this core's peak")
    args = parser.parse_args()
    if args.flops:
        return flops()
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
