"""Seed groups against separate processes: meta-a2c-lstm on Harlow (issue 19).

Group side: S seeds trained by one process as one batched computation
(`MetaA2CBackend.train_group`, torch threads --group-threads, default 2), or spread over
--group-workers such processes run at once. Solo side: S separate
worker processes (`python -m neurorl_cli.worker RUN_DIR`, run.json written with
RunConfig.to_json(), one torch thread each), --jobs (2) at a time, as `neurorl train --jobs 2` runs
them. --device puts the group side on a GPU; the solo side stays on the CPU, as a user without
groups would run it.

Both sides train the same config (checked: the run files' configs are equal) with a budget
too large to end, and each process is stopped by SIGTERM (the worker's stop request) after
--seconds of training. The steady-state rate is read from the run logs' metric events (one per
update: log_every_episodes = episodes_per_update, the only change from the catalog besides
episodes_per_update): steps between the first metric after the warm-up (the first quarter of
the training time) and the last, over their time. Start-up (process start to the `running`
event) is reported apart.

The summed solo rate is the pool's: the mean steady rate of one worker times the workers that
run at once (min(S, --jobs)). Every solo worker runs the same computation on another seed, so the
pool's rate does not depend on S; --solo-cap (default 4) caps how many solo workers are
actually started per measurement (0: all S).

Sides alternate (group first on even repeats), --repeats of each; the ratio is the median of
the repeats' ratios.

    .venv/bin/python bench/seed_groups_metarl.py --quick          # S = 1,4,16,64 at 16 episodes, ~3 min
    .venv/bin/python bench/seed_groups_metarl.py                  # S = 1,4,16,64 at 512 and 16 episodes, 3 repeats
    .venv/bin/python bench/seed_groups_metarl.py --sizes 16 --episodes 16 --group-workers 2 --group-threads 1
                                                                  # 16 seeds as `--jobs 2` groups them: 2 x 8
    .venv/bin/python bench/seed_groups_metarl.py --device cuda --sizes 64,256 --episodes 16,64 --jobs 16
                                                                  # on a GPU machine
    .venv/bin/python bench/seed_groups_metarl.py --nets           # hand-batched LSTM against vmap(functional_call)
    .venv/bin/python bench/seed_groups_metarl.py --flops          # FLOPs per update, the estimate
    .venv/bin/python bench/seed_groups_metarl.py --ceiling --sizes 8 --episodes 16,64
                                                                  # the group against one network on the same batch
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
HUGE = 10**12  # a budget no measurement reaches


def config_for(episodes: int) -> dict:
    from neurorl_cli import catalog

    (config,) = catalog.resolve(catalog.load_task("harlow"), catalog.load_model("meta-a2c-lstm"),
                                [f"model.episodes_per_update={episodes}", f"model.log_every_episodes={episodes}"],
                                steps=HUGE, checkpoint_every=HUGE)
    return config


def write_runs(root: Path, config: dict, seeds: list[int], threads: int | None, device: str = "cpu") -> list[Path]:
    from neurorl_cli.interfaces import RunConfig
    from neurorl_cli.runlog import write_run_file

    dirs = []
    for seed in seeds:
        d = root / f"seed{seed}"
        d.mkdir(parents=True)
        write_run_file(d, RunConfig(run_id=seed + 1, seed=seed, attempt=1, config=config, run_dir=str(d),
                                    device=device, threads=threads).to_json())
        dirs.append(d)
    return dirs


def events(d: Path) -> list[dict]:
    path = d / "events.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def running_at(d: Path) -> float | None:
    return next((e["t"] for e in events(d) if e.get("status") == "running"), None)


def steady_rate(d: Path) -> float:
    """Steps per second after the first quarter of the training time, from metric events."""
    metrics = [(e["t"], e["step"]) for e in events(d) if e["type"] == "metric"]
    start = running_at(d)
    if len(metrics) < 3 or start is None:
        return float("nan")
    cut = start + (metrics[-1][0] - start) / 4
    window = [m for m in metrics if m[0] >= cut]
    if len(window) < 2:
        window = metrics[-2:]
    (t0, s0), (t1, s1) = window[0], window[-1]
    return (s1 - s0) / (t1 - t0)


def stop_after(procs: list[tuple[subprocess.Popen, list[Path]]], seconds: float) -> None:
    """SIGTERM each process `seconds` after its last run started training; wait for all."""
    pending = list(procs)
    while pending:
        for item in list(pending):
            proc, dirs = item
            starts = [running_at(d) for d in dirs]
            if proc.poll() is not None:
                pending.remove(item)
            elif all(starts) and time.time() - max(starts) >= seconds:
                proc.send_signal(signal.SIGTERM)
                proc.wait()
                pending.remove(item)
        time.sleep(0.2)


def measure_group(config: dict, S: int, seconds: float, threads: int, workers: int = 1, device: str = "cpu") -> dict:
    """S seeds in `workers` group processes at once, cut as `neurorl train --seeds ... --jobs W`
    cuts them (training.cut_seeds: consecutive seeds, ceil(S / W) a group)."""
    from neurorl_cli.training import cut_seeds

    root = Path(tempfile.mkdtemp(prefix="bench-group-"))
    dirs = write_runs(root, config, list(range(S)), threads, device)
    shares = cut_seeds(dirs, S, workers)
    began = time.time()
    procs = [(subprocess.Popen([sys.executable, __file__, "_group", *map(str, share)], cwd=REPO,
                               env={**os.environ, "NEURORL_HEARTBEAT_EVERY": "0"}), share) for share in shares]
    stop_after(procs, seconds)
    rates = [steady_rate(d) for d in dirs]
    return {"rate": sum(rates), "startup": max(running_at(d) for d in dirs) - began,
            "updates": sum(e["type"] == "metric" for e in events(dirs[0])), "config": json.loads((dirs[0] / "run.json").read_text())["config"]}


def measure_solo(config: dict, S: int, seconds: float, cap: int, jobs: int = 2) -> dict:
    root = Path(tempfile.mkdtemp(prefix="bench-solo-"))
    n = S if cap <= 0 else min(S, cap)
    dirs = write_runs(root, config, list(range(n)), threads=1)
    startups, rates = [], []
    for i in range(0, n, jobs):  # `jobs` at a time, as `neurorl train --jobs`
        batch = dirs[i:i + jobs]
        began = time.time()
        procs = [(subprocess.Popen([sys.executable, "-m", "neurorl_cli.worker", str(d)], cwd=REPO,
                                   env={**os.environ, "NEURORL_HEARTBEAT_EVERY": "0"}), [d]) for d in batch]
        stop_after(procs, seconds)
        startups += [running_at(d) - began for d in batch]
        rates += [steady_rate(d) for d in batch]
    return {"rate": statistics.mean(rates) * min(S, jobs), "startup": statistics.mean(startups),
            "config": json.loads((dirs[0] / "run.json").read_text())["config"]}


def group_worker(dirs: list[str]) -> None:
    """The group side's process: train_group over the run dirs, stopped by SIGTERM."""
    import torch

    from neurorl_cli.engines.native.meta_a2c_group import GroupMetaA2CBackend as MetaA2CBackend
    from neurorl_cli.interfaces import RunConfig
    from neurorl_cli.runlog import RunLog, read_run_file

    runs = [RunConfig(**read_run_file(Path(d))) for d in dirs]
    torch.set_num_threads(runs[0].threads or 2)
    logs = [RunLog(Path(r.run_dir), r.attempt) for r in runs]

    def stop(signum, frame):
        for log in logs:
            log.request_stop()

    signal.signal(signal.SIGTERM, stop)
    MetaA2CBackend().train_group(runs, logs)
    for log in logs:
        if not log.finished:
            log.finish("cancelled")
        log.close()


def flops_per_update(episodes: int) -> dict:
    """Forward FLOPs of one step of one episode (LSTM cell, heads, pointwise), times the
    episode's steps and the episodes; forward + backward ~ 3x forward."""
    from neurorl_cli.engines.native.meta_a2c import build_env

    config = config_for(episodes)
    env = build_env(config, 1, 0, "cpu")
    D, H, A, T = env.obs_dim, config["model"]["hyper"]["hidden_size"], env.n_actions, env.episode_steps
    gates = 2 * (D + H) * 4 * H  # one multiply-add per weight
    heads = 2 * H * (A + 1)
    pointwise = 4 * H * 4 + H * 8 + A * 10  # activations, cell update, softmax / log-prob / entropy
    forward = (gates + heads + pointwise) * T * episodes
    return {"obs_dim": D, "hidden": H, "steps_per_episode": T, "forward_flops_per_step": gates + heads + pointwise,
            "update_gflop": 3 * forward / 1e9}


def nets_bench(S: int, n: int, repeats: int = 200) -> None:
    """One forward + backward of 18 steps: StackedMetaLSTM against vmap(functional_call)."""
    import torch

    from neurorl_cli.nets.meta_lstm import MetaLSTM, StackedMetaLSTM, vmapped_forward

    torch.set_num_threads(1)
    nets = [MetaLSTM(21, 2, 48) for _ in range(S)]
    stack = StackedMetaLSTM.from_nets(nets)
    params, vforward = vmapped_forward(nets)
    obs = torch.randn(18, S, n, 21)

    def run(step, parameters):
        state = (torch.zeros(S, n, 48), torch.zeros(S, n, 48))
        total = 0
        for t in range(18):
            logits, value, state = step(obs[t], state)
            total = total + logits.sum() + value.sum()
        total.backward()
        for p in parameters:
            p.grad = None

    for name, fn in (("stacked (bmm)", lambda: run(stack.stepper(), stack.parameters())),
                     ("vmap(functional cell)", lambda: run(vforward, list(params.values())))):
        for _ in range(5):
            fn()
        t = time.perf_counter()
        for _ in range(repeats):
            fn()
        print(f"  S={S:3d} n={n:4d} {name:22s} {(time.perf_counter() - t) / repeats * 1e3:7.2f} ms per unroll+backward")


def ceiling_bench(S: int, n: int, seconds: float = 2.0, repeats: int = 3) -> None:
    """How far grouping can go: the group trainer's update (meta_a2c_group.update_group) on one
    thread at S seeds x n episodes, against the same code at 1 seed x S*n episodes (one network,
    the same batch) and at 1 seed x n. If the first two run at one rate, the group
    costs nothing over one big batch, and the ratio to separate processes is bounded by what the
    larger batch gains on a core, whatever the group's code."""
    import torch

    from neurorl_cli.engines.native.meta_a2c import Hyper, build_env
    from neurorl_cli.engines.native.meta_a2c_group import _rmsprop, update_group
    from neurorl_cli.nets.meta_lstm import MetaLSTM, StackedMetaLSTM

    torch.set_num_threads(1)

    def update_fn(seeds: int, episodes: int):
        config = config_for(episodes)
        hyper = Hyper(**config["model"]["hyper"])
        env = build_env(config, seeds * episodes, seed=0, device="cpu")
        env.split_streams(list(range(seeds)))
        nets = []
        for s in range(seeds):
            torch.manual_seed(s)
            nets.append(MetaLSTM(env.obs_dim, env.n_actions, hyper.hidden_size))
        stack = StackedMetaLSTM.from_nets(nets)
        optim = _rmsprop(stack, hyper)
        generators = [torch.Generator().manual_seed(s) for s in range(seeds)]

        def update() -> int:
            steps, _, _, _ = update_group(stack, optim, env, episodes, generators, hyper)
            return int(steps["mask"].sum())

        update()  # warm-up
        return update

    shapes = {f"{S} seeds x {n}": update_fn(S, n), f"1 seed x {S * n}": update_fn(1, S * n), f"1 seed x {n}": update_fn(1, n)}
    rates: dict[str, list[float]] = {k: [] for k in shapes}
    for _ in range(repeats):  # alternated
        for name, update in shapes.items():
            t, steps = time.perf_counter(), 0
            while time.perf_counter() - t < seconds:
                steps += update()
            rates[name].append(steps / (time.perf_counter() - t))
    median = {k: statistics.median(v) for k, v in rates.items()}
    one = median[f"1 seed x {n}"]
    for name, rate in median.items():
        print(f"  {name:>18}  {rate:11,.0f} steps/s on one thread  {rate / one:5.2f}x one seed x {n}")


def header(setup: str) -> None:
    print(f"# {' '.join(sys.argv)}\n# load average {os.getloadavg()}, cpus {os.cpu_count()}, {setup}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="16 episodes per update, 1 repeat, 6 s per side")
    ap.add_argument("--sizes", default="1,4,16,64")
    ap.add_argument("--episodes", default=None, help="episodes per update, comma-separated (default 512,16)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=None, help="training seconds per process")
    ap.add_argument("--solo-cap", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=2, help="solo processes at a time")
    ap.add_argument("--device", default="cpu", help="where the group side trains (cpu, cuda)")
    ap.add_argument("--group-threads", type=int, default=2)
    ap.add_argument("--group-workers", type=int, default=1,
                    help="group processes the S seeds are spread over, run at once (2 with --group-threads 1: "
                         "what `neurorl train --seeds 0-15 --jobs 2` does on a CPU)")
    ap.add_argument("--nets", action="store_true")
    ap.add_argument("--flops", action="store_true")
    ap.add_argument("--ceiling", action="store_true",
                    help="the group's update at S x E against one network at 1 x S*E (see ceiling_bench)")
    args = ap.parse_args()
    if args.nets:
        for S, n in ((4, 16), (16, 16), (64, 16), (16, 512)):
            nets_bench(S, n, repeats=20 if n > 100 else 100)
        return
    if args.ceiling:
        header("one thread")
        for E in [int(x) for x in (args.episodes or "16,64").split(",")]:
            for S in [int(x) for x in args.sizes.split(",")]:
                ceiling_bench(S, E)
        return
    if args.flops:
        for e in (16, 512):
            print(e, flops_per_update(e))
        return
    episodes = [int(x) for x in (args.episodes or ("16" if args.quick else "512,16")).split(",")]
    repeats = args.repeats or (1 if args.quick else 3)
    seconds = args.seconds or (6.0 if args.quick else 20.0)
    sizes = [int(x) for x in args.sizes.split(",")]
    header(f"group on {args.device}, threads {args.group_threads}, workers {args.group_workers}; solo {args.jobs} at a time")
    for E in episodes:
        config = config_for(E)
        print(f"\n## {E} episodes per update ({flops_per_update(E)['update_gflop']:.2f} GFLOP per update per seed, estimated)")
        print(f"{'S':>4} {'group steps/s':>14} {'solo steps/s':>13} {'ratio':>6} {'group start s':>14} {'solo start s':>13}  ratios")
        for S in sizes:
            results = []
            for r in range(repeats):
                order = ("group", "solo") if r % 2 == 0 else ("solo", "group")
                got = {}
                for side in order:
                    got[side] = (measure_group(config, S, seconds, args.group_threads, args.group_workers, args.device)
                                 if side == "group" else measure_solo(config, S, seconds, args.solo_cap, args.jobs))
                assert got["group"].pop("config") == got["solo"].pop("config") == config, "the sides trained different configs"
                results.append(got)
            ratios = [g["group"]["rate"] / g["solo"]["rate"] for g in results]
            med = lambda side, key: statistics.median(g[side][key] for g in results)  # noqa: E731
            print(f"{S:4d} {med('group', 'rate'):14,.0f} {med('solo', 'rate'):13,.0f} {statistics.median(ratios):6.2f} "
                  f"{med('group', 'startup'):14.1f} {med('solo', 'startup'):13.1f}  {', '.join(f'{x:.2f}' for x in ratios)}",
                  flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_group":
        group_worker(sys.argv[2:])
    else:
        main()
