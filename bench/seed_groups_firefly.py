"""Firefly td3-modular seeds trained as one seed group against the same seeds as separate processes.

    python bench/seed_groups_firefly.py [--seeds 1,4,16,64] [--runs 3] [--measure 300] [--warmup 800]
    python bench/seed_groups_firefly.py --quick          # a smoke test: S = 1, 2 (or --seeds); 1 run; warm-up 64; replay_period 32
    python bench/seed_groups_firefly.py --device cuda --seeds 64,256 --jobs 16 --separate-cap 32   # on a GPU machine

For each S, alternating the two sides run after run:

- group: one worker process (`python -m neurorl_cli.worker DIR_1 ... DIR_S`, torch threads 2)
  trains the S seeds as one batched computation (engines/native/td3_group.py);
- separate: S workers (`python -m neurorl_cli.worker DIR`, torch threads 1 each, on the CPU), --jobs
  (2) at a time.

--device puts the group on a GPU (the separate side stays what a user without groups would run:
one CPU process per seed). --separate-cap N runs only the first N of the S separate processes:
their summed rate is the per-process rate times the processes running at once, so N >= 2 x --jobs
measures it without training hundreds of seeds.

Both sides run the catalog's td3-modular on the catalog's firefly task, with the warm-up
(`model.warmup_trials`, the catalog's 800 unless --warmup) and a bound on the whole run
(`model.max_trials_in_all` = warm-up + --measure + 100) as the only overrides; the script checks
that both sides' run files hold the same config. The rate is steady-state, read from the run
logs: each seed's trials between its first phase-I report at least 100 trials after the
warm-up (updates are running by then) and its last report, over the time between those events.
Summed trials/s: the group's is the sum over its seeds; the separate side's is the mean
per-process rate times the processes running at once (min(S, --jobs)). Process start-up (launch to
the worker's `running` event) is reported apart. Medians over the runs, and the median of the
per-run ratios.
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

REPO = Path(__file__).resolve().parents[1]


def configure(warmup: int, measure: int, extra: list[str]) -> dict:
    from neurorl_cli import catalog

    overrides = [f"model.warmup_trials={warmup}", f"model.max_trials_in_all={warmup + measure + 100}", *extra]
    (config,) = catalog.resolve(catalog.load_task("firefly"), catalog.load_model("td3-modular"), overrides)
    return config


def write_runs(root: Path, config: dict, seeds: int, threads: int, group: bool, device: str = "cpu") -> list[Path]:
    from neurorl_cli.interfaces import RunConfig
    from neurorl_cli.runlog import write_run_file

    dirs = []
    for seed in range(seeds):
        run_dir = root / f"seed{seed}"
        run_dir.mkdir(parents=True)
        run = RunConfig(run_id=seed + 1, seed=seed, attempt=1, config=config, run_dir=str(run_dir), device=device,
                        threads=threads, group=list(range(1, seeds + 1)) if group and seeds > 1 else None)
        write_run_file(run_dir, run.to_json())
        dirs.append(run_dir)
    return dirs


def worker(dirs: list[Path]) -> subprocess.Popen:
    env = {**os.environ, "NEURORL_HEARTBEAT_EVERY": "30"}
    return subprocess.Popen([sys.executable, "-m", "neurorl_cli.worker", *map(str, dirs)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"worker failed ({proc.returncode}):\n{err[-3000:]}")


def seed_rate(run_dir: Path, warmup: int, launched: float) -> dict:
    """One seed's steady-state trials/s and its process start-up, from its run log."""
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    running = next(e["t"] for e in events if e["type"] == "status" and e["status"] == "running")
    reports = [e for e in events if e["type"] == "metric" and "phase1/rewarded_fraction" in e["values"]
               and e["step"] >= warmup + 100]
    if len(reports) < 2:
        raise SystemExit(f"{run_dir}: fewer than two phase-I reports after the warm-up; raise --measure")
    first, last = reports[0], reports[-1]
    return {"rate": (last["step"] - first["step"]) / (last["t"] - first["t"]), "startup": running - launched}


def group_side(root: Path, config: dict, seeds: int, warmup: int, device: str) -> dict:
    dirs = write_runs(root, config, seeds, threads=2, group=True, device=device)
    launched = time.time()
    finish(worker(dirs))
    rows = [seed_rate(d, warmup, launched) for d in dirs]
    return {"trials_per_s": sum(r["rate"] for r in rows), "startup_s": max(r["startup"] for r in rows)}


def separate_side(root: Path, config: dict, seeds: int, warmup: int, jobs: int, cap: int | None) -> dict:
    dirs = write_runs(root, config, seeds if cap is None else min(seeds, cap), threads=1, group=False)
    rows, pending, running = [], list(dirs), []
    while pending or running:
        while pending and len(running) < jobs:
            d = pending.pop(0)
            running.append((d, time.time(), worker([d])))
        for item in list(running):
            d, launched, proc = item
            if proc.poll() is not None:
                finish(proc)
                rows.append(seed_rate(d, warmup, launched))
                running.remove(item)
        time.sleep(0.2)
    return {"trials_per_s": min(seeds, jobs) * statistics.mean(r["rate"] for r in rows),
            "startup_s": statistics.median(r["startup"] for r in rows)}


def same_config(a: Path, b: Path) -> None:
    ca, cb = (json.loads((d / "seed0" / "run.json").read_text())["config"] for d in (a, b))
    if ca != cb:
        raise SystemExit("the two sides ran different configs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default=None, help="seed counts S, comma-separated (default 1,4,16,64; --quick: 1,2)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=None, help="model.warmup_trials (default: the catalog's)")
    parser.add_argument("--measure", type=int, default=300, help="phase-I trials after the warm-up's first report")
    parser.add_argument("--device", default="cpu", help="where the group trains (cpu, cuda)")
    parser.add_argument("--jobs", type=int, default=2, help="separate processes at a time")
    parser.add_argument("--separate-cap", type=int, default=None, metavar="N", help="run only N of the S separate processes")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test off the catalog's settings: S = 1, 2 unless --seeds; one run; warm-up 64; replay_period 32")
    args = parser.parse_args()
    extra = []
    args.seeds = args.seeds or ("1,2" if args.quick else "1,4,16,64")
    if args.quick:
        args.runs, args.warmup, args.measure = 1, 64, 200
        extra = ["model.replay_period=32"]
    sys.path.insert(0, str(REPO / "src"))
    from neurorl_cli.engines.native.td3 import Hyper

    warmup = Hyper().warmup_trials if args.warmup is None else args.warmup
    config = configure(warmup, args.measure, extra)
    print(f"firefly td3-modular{' ' + ' '.join(extra) if extra else ''}, warm-up {warmup} trials, {args.measure} measured; "
          f"group: 1 process on {args.device}, 2 threads; separate: S processes on the CPU, {args.jobs} at a time, 1 thread each"
          f"{f' (at most {args.separate_cap} run)' if args.separate_cap else ''}; {args.runs} run(s), alternating")
    print(f"{'S':>3} {'group tr/s':>11} {'separate tr/s':>14} {'ratio':>6} {'start-up g/s (s)':>17}")
    for seeds in [int(s) for s in args.seeds.split(",")]:
        results: dict[str, list[dict]] = {"group": [], "separate": []}
        for k in range(args.runs):
            order = ("group", "separate") if k % 2 == 0 else ("separate", "group")
            with tempfile.TemporaryDirectory() as tmp:
                roots = {side: Path(tmp) / side for side in order}
                for side in order:
                    if side == "group":
                        results[side].append(group_side(roots[side], config, seeds, warmup, args.device))
                    else:
                        results[side].append(separate_side(roots[side], config, seeds, warmup, args.jobs, args.separate_cap))
                same_config(roots["group"], roots["separate"])
        ratio = statistics.median(g["trials_per_s"] / s["trials_per_s"] for g, s in zip(results["group"], results["separate"]))
        med = {side: {key: statistics.median(r[key] for r in rows) for key in rows[0]} for side, rows in results.items()}
        print(f"{seeds:>3} {med['group']['trials_per_s']:>11.2f} {med['separate']['trials_per_s']:>14.2f} {ratio:>6.2f} "
              f"{med['group']['startup_s']:>8.1f}/{med['separate']['startup_s']:.1f}", flush=True)


if __name__ == "__main__":
    main()
