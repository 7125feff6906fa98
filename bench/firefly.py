"""Firefly benchmarks: learning of td3-modular against td3-holistic, training speed, and
evaluating many checkpoints in one batched pass against one at a time.

    python bench/firefly.py learning [--seeds 0-2] [--trials 10000] [--home DIR] [--minutes M] [--window 10000] [--set K=V]...
                                     [--results bench/results/firefly-study.jsonl] [--models td3-modular]
    python bench/firefly.py eval     [--checkpoints 50] [--runs 3] [--trials 500]
    python bench/firefly.py speed    [--trials 400] [--runs 3] [--device cpu]

`learning` trains both catalog agents through the CLI (the two models side by side, one worker
and one share of the cores each, each seed in turn) in a registry (scratch, or --home),
evaluates every checkpoint under `gain1x` and prints the reward rate (rewarded trials per
second) per seed and checkpoint, the final value and the mean over seeds, as the modularity
study's Fig. 1 plots it; and per run its phase-I length and training speed (trials per second,
phase I included). The full measurement takes hours per run on a CPU, so it can be done in
parts: --minutes stops the runs in progress (each saves a checkpoint), and a later invocation
with the same --home continues them from there and trains the seeds still missing. --window N
trains each run only to N trials in all, phase I included (10000: the study's Fig. 1 window),
and stops it there with a checkpoint, and the report ends with the study's comparison over the
seeds trained through the window (`compare`). --set is passed to `train` for both models (for example
`--set model.trials_per_batch=1`, the reference's schedule of updates inside each trial); use
its own --home, since a registry's runs are told apart by model and seed only.

--results FILE (with --window) makes the study outlive its scratch registries: each seed trained
through the window is appended to FILE as one JSON line (its figures, the setup, the commit and
the machine), seeds FILE already holds for the same setup are not trained again, and the
comparison runs over every seed FILE holds for that setup. bench/results/firefly-study.jsonl is
the study as measured so far; pass it to continue it. --models trains one of the two models only
(two invocations on separate registries then use both cores for it).

What the study's own published curves show (ryzhang1/Inductive_bias, model/training_curve/gain,
one gain1x validation every 500 trials; only the seeds its authors kept): Actor3Critic5 seeds
1, 2, 4, 5 left phase I after 3,500-10,500 trials (median 6,250), Actor1Critic1 seeds 0, 2, 3,
4, 8, 12, 15, 18 after 10,000-22,500 (median 16,750). Inside 10^4 trials in all, 3 of the 4
modular seeds and none of the 8 holistic ones had reached phase II. Fig. 1 selects seeds and
checkpoints on phase-II trials below 10^4 and plots its curve (the rewarded fraction) over the
first 10^4 trials in all.

`eval` evaluates K checkpoints of td3-modular under gain1x both ways, in this process,
alternating: one at a time (`TD3Backend.evaluate`, what `eval` does for other backends) and in
one batched pass (`evaluate_many`, which `neurorl eval --all-checkpoints` uses). The
checkpoints are K differently seeded, untrained agents (untrained agents seldom stop, so
trials run to their 35-step limit: the most work per trial). Both sides must give the same
metrics; the ratio is of wall-clock times.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from neurorl_cli import atomic
from neurorl_cli.catalog import parse_seeds
from neurorl_cli.home import find_home, from_stored
from neurorl_cli.provenance import git_state

REPO = Path(__file__).resolve().parents[1]
MODELS = ("td3-modular", "td3-holistic")
FIG1_TRIALS = 10_000


def _cli(home: Path, *args: str, threads: int | None = None) -> subprocess.Popen:
    env = {**os.environ, "NEURORL_HOME": str(home)}
    if threads:  # runs side by side: one share of the cores each, not torch's default of all
        env["OMP_NUM_THREADS"] = str(threads)
    return subprocess.Popen([sys.executable, "-m", "neurorl_cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait(*procs: subprocess.Popen, stopped: bool = False) -> None:
    for proc in procs:
        _, err = proc.communicate()
        # 1: some run or checkpoint failed (reported in the registry); 130: stopped by --minutes
        if proc.returncode not in (0, 1) and not (stopped and proc.returncode == 130):
            raise SystemExit(f"neurorl exited {proc.returncode}: {err.strip()[-2000:]}")


def _runs(home: Path, model: str) -> dict[int, tuple[int, str, Path]]:
    """The latest run of `model` per seed: (id, status, run directory)."""
    if not (home / "registry.db").exists():
        return {}
    con = sqlite3.connect(home / "registry.db")
    rows = con.execute("SELECT r.seed, r.id, r.status, r.run_dir FROM run r JOIN experiment x ON x.id = r.experiment_id "
                       "WHERE x.name = ? ORDER BY r.id", (model,)).fetchall()
    con.close()
    return {seed: (run, status, _run_dir(run_dir)) for seed, run, status, run_dir in rows}


def _run_dir(stored: str) -> Path:
    """A run directory as the registry stores it (relative to the runs root), made absolute
    where the CLI's processes find it: find_home with learning's NEURORL_HOME (and NEURORL_RUNS,
    which they inherit)."""
    return Path(from_stored(stored, find_home().runs))


def _progress(run_dir: Path) -> dict:
    """A run's progress from its log: phase-I trials (exact from the phase-switch event, else the
    last hundred phase-I metrics were logged at), whether it is still in phase I, phase-II+
    trials (their metrics are logged against them), trials in all, and its phase-I metric rows."""
    phase1, phase2, switched, rows = 0, 0, False, []
    events = run_dir / "events.jsonl"
    for event in map(json.loads, events.read_text().splitlines() if events.exists() else []):
        if "after_phase1_trials" in event:
            phase1, switched = event["after_phase1_trials"], True
        elif event["type"] == "metric" and any(k.startswith("phase1/") for k in event["values"]):
            phase1 = max(phase1, event["step"])
            rows.append((event["step"], event["values"]))
        elif event["type"] == "metric":
            phase2 = max(phase2, event["step"])
    return {"phase1_trials": phase1, "in_phase1": not switched, "phase2_trials": phase2,
            "trials_in_all": phase1 + phase2, "phase1_rows": rows}


def _setup(args) -> dict:
    """What a recorded seed's figures depend on besides model and seed (the code aside: the
    commit is recorded with them)."""
    return {"window": args.window, "trials": args.trials, "device": args.device, "set": sorted(args.set)}


def _recorded(args) -> list[dict]:
    """The seeds --results holds for this setup."""
    path = Path(args.results) if args.results else None
    if path is None or not path.exists():
        return []
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["setup"] == _setup(args)]


def _record(args, report: dict) -> list[dict]:
    """Appends to --results the seeds of this registry trained through the window that it
    does not hold yet (the file rewritten atomically, under a lock, for invocations side by
    side on other registries), and returns what it holds for this setup now."""
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _append(path, args, report)


def _append(path: Path, args, report: dict) -> list[dict]:
    recorded = _recorded(args)  # read again under the lock: another part may have appended since
    held = {(r["model"], r["seed"]) for r in recorded}
    here = _commit(git_state(REPO))
    new = [{"model": model, "seed": r["seed"], "setup": _setup(args), **_figures(r),
            "trials_per_s": r["trials_per_s"], "commit": r["commit"] or here, "machine": _machine(),
            "date": time.strftime("%Y-%m-%d")}
           for model in MODELS for r in report[model]["runs"]
           if _through(r, args.window) and (model, r["seed"]) not in held]
    if new:
        old = path.read_text() if path.exists() else ""
        atomic.write_text(path, old + "".join(json.dumps(r) + "\n" for r in new))
    return recorded + new


def _commit(git: dict | None) -> str | None:
    """A row names the commit its run recorded at launch, not the tree at append time: an
    invocation side by side appending to the tracked results file makes that tree dirty."""
    return git and git["commit"][:7] + ("-dirty" if git["dirty"] else "")


def _machine() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.exists() else []
    return f"{names[0] if names else platform.processor()}, {os.cpu_count()} cores"


def _through(run: dict, window: int) -> bool:
    return run["trials_in_all"] >= window or run["status"] == "completed"


def _figures(run: dict) -> dict:
    """A seed's figures in the study's comparison."""
    return {"in_phase1": run["in_phase1"], "phase1_trials": run["phase1_trials"], "trials_in_all": run["trials_in_all"],
            "reward_rate": run["reward_rate_at_1e4_trials_in_all"] or 0.0,
            "reward_fraction": run["reward_fraction_at_1e4_trials_in_all"] or 0.0}


def _train(home: Path, model: str, args, deadline: float | None, threads: int, recorded: set[int]) -> None:
    """One model's seeds in turn, one `train` command each: a run an earlier invocation
    stopped (or that was killed with it) continues from its last checkpoint, a missing seed is trained, a
    completed one, or one in `recorded` (the seeds --results holds), is skipped. A run is
    stopped with SIGTERM (it saves a checkpoint and ends `cancelled`; the next invocation with
    the same --home continues it) at the deadline, or, with --window, once it has trained that
    many trials in all."""
    def done(run) -> bool:
        return run[1] == "completed" or bool(args.window and _progress(run[2])["trials_in_all"] >= args.window)

    for seed in parse_seeds(args.seeds):
        if seed in recorded:
            continue
        run = _runs(home, model).get(seed)
        while run and run[1] == "running":
            # Left by an invocation that was killed (this one is its home's only trainer): the
            # registry calls it crashed once its last heartbeat's promise lapses, and it resumes.
            if deadline is not None and time.monotonic() >= deadline:
                return
            time.sleep(10)
            _wait(_cli(home, "runs", "list"))
            run = _runs(home, model).get(seed)
        if run and done(run):
            continue
        if run and run[1] in ("cancelled", "crashed"):
            command = ("train", "--resume", f"r{run[0]}")  # rN: a bare number can also name an experiment
        else:
            command = ("train", "firefly", model, "--seeds", str(seed), "--trials", str(args.trials),
                       "--name", model, "--device", args.device, *(a for kv in args.set for a in ("--set", kv)))
        proc = _cli(home, *command, threads=threads)
        stopped = False
        while proc.poll() is None:
            time.sleep(5)
            run = _runs(home, model).get(seed)
            if (deadline is not None and time.monotonic() >= deadline) or (run and args.window and done(run)):
                proc.send_signal(signal.SIGTERM)
                stopped = True
                break
        _wait(proc, stopped=stopped)
        if deadline is not None and time.monotonic() >= deadline:
            return


def _evaluated(home: Path) -> tuple[list, list]:
    """The registry's gain1x evaluations (model, seed, step, metrics), and per run its status,
    directory and the trials per second it last logged (phase I included). Both empty
    where nothing was trained here (every seed asked for already in --results)."""
    if not (home / "registry.db").exists():
        return [], []
    con = sqlite3.connect(home / "registry.db")
    rows = con.execute(
        "SELECT x.name, r.seed, c.step, e.metrics FROM evaluation e JOIN checkpoint c ON c.id = e.checkpoint_id "
        "JOIN run r ON r.id = c.run_id JOIN experiment x ON x.id = r.experiment_id "
        "WHERE e.protocol = 'gain1x' ORDER BY x.name, r.seed, c.step").fetchall()
    runs = con.execute(
        "SELECT x.name, r.seed, r.status, r.run_dir, r.versions, "
        "(SELECT m.value FROM metric m WHERE m.run_id = r.id AND m.key IN ('train/trials_per_s', 'phase1/trials_per_s') "
        "ORDER BY m.id DESC LIMIT 1) FROM run r JOIN experiment x ON x.id = r.experiment_id ORDER BY r.id").fetchall()
    con.close()
    return rows, runs


def learning(args) -> None:
    home = Path(args.home or tempfile.mkdtemp(prefix="bench-firefly-")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["NEURORL_HOME"] = str(home)  # for _run_dir, as for the CLI's processes
    print(f"registry: {home}", flush=True)
    start = time.perf_counter()
    deadline = time.monotonic() + 60 * args.minutes if args.minutes else None
    models = args.models.split(",")
    threads = args.threads or max(1, (os.cpu_count() or 1) // len(models))
    recorded = _recorded(args)
    with ThreadPoolExecutor(len(models)) as pool:
        list(pool.map(lambda model: _train(home, model, args, deadline, threads,
                                           {r["seed"] for r in recorded if r["model"] == model}), models))
    minutes = (time.perf_counter() - start) / 60
    _wait(*[_cli(home, "eval", model, "--all-checkpoints", "--protocol", "gain1x", threads=threads) for model in MODELS if _runs(home, model)])
    rows, runs = _evaluated(home)
    report: dict = {"this_invocation_minutes": round(minutes, 1), "trials": args.trials}
    for model in MODELS:
        evaluated: dict[int, list[tuple[int, dict]]] = {}
        for name, seed, step, metrics in rows:
            if name == model:
                evaluated.setdefault(seed, []).append((step, json.loads(metrics)))
        # Fig. 1's selection reads the reward rate; its curve (Fig. 1f), the rewarded fraction.
        curves, fractions = ({seed: [(step, round(m[key], 3)) for step, m in points] for seed, points in sorted(evaluated.items())}
                             for key in ("reward_rate", "reward_fraction"))
        final = [c[-1][1] for c in curves.values() if c]
        mine_runs = []
        for name, seed, status, run_dir, versions, rate in runs:
            if name != model:
                continue
            progress = _progress(_run_dir(run_dir))
            # The study's Fig. 1f window is 10^4 trials in all, phase I included (MAX_TRAINING_T
            # applied to ordered_episode): the last checkpoint inside it. A run still in phase I has
            # one, saved when it was stopped (step 0: the budget counts phase-II trials), the
            # policy it had then.
            limit = 0 if progress["in_phase1"] else FIG1_TRIALS - progress["phase1_trials"]
            inside = [v for step, v in curves.get(seed, []) if step <= limit]
            inside_fraction = [v for step, v in fractions.get(seed, []) if step <= limit]
            # How far phase I got: the behaviour policy (exploration noise 0.8) over its last
            # 1000 phase-I trials inside the window.
            end = min(progress["phase1_trials"], FIG1_TRIALS)
            tail = [v for step, v in progress.pop("phase1_rows") if end - 1000 < step <= end]
            mine_runs.append({
                "seed": seed, "status": status, **progress, "trials_per_s": round(rate or 0, 2),
                "commit": _commit((json.loads(versions or "{}").get("launch") or {}).get("git")),
                "reward_rate_at_1e4_trials_in_all": inside[-1] if inside else None,
                "reward_fraction_at_1e4_trials_in_all": inside_fraction[-1] if inside_fraction else None,
                "phase1_last_1000": {key: round(float(np.mean([v[f"phase1/{key}"] for v in tail])), 4) if tail else None
                                     for key in ("rewarded_fraction", "distance_cm")},
            })
        report[model] = {
            "runs": mine_runs,
            "final_reward_rate": final,
            "mean_final": round(float(np.mean(final)), 3) if final else None,
            "sd_final": round(float(np.std(final)), 3) if final else None,
            "best_reward_rate": [max(v for _, v in c) for c in curves.values() if c],
            "curves": curves,
        }
    if args.window:
        held = _record(args, report) if args.results else []
        # Every seed through the window: this registry's, and those --results holds from earlier parts.
        seeds = {model: {r["seed"]: _figures(r) for r in report[model]["runs"] if _through(r, args.window)} for model in MODELS}
        for r in held:
            seeds[r["model"]].setdefault(r["seed"], r)
        short = {model: sum(not _through(r, args.window) and r["seed"] not in seeds[model] for r in report[model]["runs"])
                 for model in MODELS}
        report["comparison"] = compare(seeds, short, args.window)
    print(json.dumps(report, indent=1))


def compare(seeds: dict[str, dict[int, dict]], short: dict[str, int], window: int) -> dict:
    """The study's figures over the seeds trained through the window (`_figures` per model and
    seed; `short` counts the runs still short of it, left out): per model the fraction that
    reached phase II inside it, with a Wilson 95 % interval, the reward rate at its end (mean,
    bootstrap 95 % interval) and the rewarded fraction (Fig. 1f's measure); the difference
    tested by Fisher's exact test (fractions) and Mann-Whitney's U (reward rates), two-sided."""
    from scipy.stats import binomtest, fisher_exact, mannwhitneyu

    from neurorl_cli.analysis.stats import bootstrap_ci

    out, counts, rates = {}, {}, {}
    for model in MODELS:
        done = [seeds[model][seed] for seed in sorted(seeds[model])]
        reached = sum(not r["in_phase1"] and r["phase1_trials"] < window for r in done)
        counts[model] = (reached, len(done) - reached)
        rates[model] = [r["reward_rate"] for r in done]
        fractions = [r["reward_fraction"] for r in done]
        entry = {"seeds": sorted(seeds[model]), "seeds_through_window": len(done), "seeds_short_of_it": short[model],
                 "reached_phase2": reached}
        if done:
            ci = binomtest(reached, len(done)).proportion_ci(0.95, method="wilson")
            mean, lo, hi = bootstrap_ci(rates[model])
            entry |= {"fraction_phase2": round(reached / len(done), 3), "fraction_phase2_ci95": [round(ci.low, 3), round(ci.high, 3)],
                      "reward_rate_mean": round(mean, 4), "reward_rate_ci95": [round(lo, 4), round(hi, 4)],
                      "reward_fraction_mean": round(float(np.mean(fractions)), 4)}
        out[model] = entry
    a, b = MODELS
    if all(sum(counts[m]) for m in MODELS):
        out["fisher_exact_p_phase2"] = round(float(fisher_exact([counts[a], counts[b]])[1]), 4)
        if len(set(rates[a] + rates[b])) > 1:
            out["mann_whitney_p_reward_rate"] = round(float(mannwhitneyu(rates[a], rates[b]).pvalue), 4)
    return out


def eval_speed(args) -> None:
    import torch

    from neurorl_cli import catalog
    from neurorl_cli.engines.native.td3 import TD3, Hyper, TD3Backend

    config = catalog.resolve(catalog.load_task("firefly"), catalog.load_model("td3-modular"))[0]
    protocol = {**config["task"]["protocols"]["gain1x"], "trials": args.trials}
    scratch = Path(tempfile.mkdtemp(prefix="bench-firefly-eval-"))
    paths = []
    for k in range(args.checkpoints):
        torch.manual_seed(k)
        hyper = Hyper(**config["model"]["hyper"])
        paths.append(scratch / f"agent{k}.pt")
        torch.save({"agent": TD3(hyper, "cpu").state_dict(), "hyper": hyper.model_dump()}, paths[-1])
    backend = TD3Backend()
    times: dict[str, list[float]] = {"one_at_a_time": [], "batched": []}
    for _ in range(args.runs):
        start = time.perf_counter()
        single = [backend.evaluate(config, p, protocol) for p in paths]
        times["one_at_a_time"].append(time.perf_counter() - start)
        start = time.perf_counter()
        batched = backend.evaluate_many(config, paths, protocol)
        times["batched"].append(time.perf_counter() - start)
        for (m1, _), (m2, _) in zip(single, batched):
            assert m1.keys() == m2.keys() and all(abs(m1[k] - m2[k]) <= 1e-4 * max(1.0, abs(m1[k])) for k in m1), (m1, m2)
    ratios = [a / b for a, b in zip(times["one_at_a_time"], times["batched"])]
    print(json.dumps({"checkpoints": args.checkpoints, "trials_per_checkpoint": args.trials,
                      "torch_threads": torch.get_num_threads(),
                      "seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
                      "median_ratio_one_at_a_time_over_batched": round(statistics.median(ratios), 2)}, indent=1))


def training_speed(args) -> None:
    """Trials per second of each catalog agent from its first trial: updates from the start
    (no warm-up), phase I ended after 100 trials whatever the success, then `--trials` phase-II
    trials; runs one at a time (torch's default threads), `--runs` times, median reported. An
    untrained agent seldom stops, so its trials run to the 35-step limit: ~9 updates per trial,
    the most work per trial training meets."""
    result = {}
    for model in ("td3-modular", "td3-holistic", "ekf-td3"):
        rates = []
        for _ in range(args.runs):
            home = Path(tempfile.mkdtemp(prefix="bench-firefly-speed-"))
            _wait(_cli(home, "train", "firefly", model, "--trials", str(args.trials), "--checkpoint-every", str(args.trials),
                       "--set", "model.warmup_trials=0", "--set", "model.phase2_rewarded=0", "--device", args.device))
            con = sqlite3.connect(home / "registry.db")
            rates.append(con.execute("SELECT value FROM metric WHERE key = 'train/trials_per_s' ORDER BY step DESC").fetchone()[0])
            con.close()
        result[model] = {"trials_per_s": [round(r, 2) for r in rates], "median": round(statistics.median(rates), 2)}
    print(json.dumps({"device": args.device, "phase2_trials": args.trials, **result}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("learning")
    p.add_argument("--seeds", default="0-2")
    p.add_argument("--trials", type=int, default=10_000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--home", default=None, help="registry to use; a later invocation with the same one continues it")
    p.add_argument("--minutes", type=float, default=None, help="stop training after this long (runs resumable)")
    p.add_argument("--window", type=int, default=None,
                   help="train each run only to this many trials in all, phase I included (the study's Fig. 1: 10000)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to `neurorl train` (both models)")
    p.add_argument("--models", default=",".join(MODELS), choices=[*MODELS, ",".join(MODELS)], metavar="MODEL[,MODEL]",
                   help="the models to train here (the comparison still reads both)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per run (default: the cores shared by the models trained; give 1 to each of two "
                        "invocations side by side, since oversubscribed threads slow torch many times over)")
    p.add_argument("--results", default=None, metavar="FILE",
                   help="with --window: seeds through it are appended here, seeds held here are not trained again, "
                        "and the comparison runs over all of them (the study across sessions)")
    p = sub.add_parser("eval")
    p.add_argument("--checkpoints", type=int, default=50)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--trials", type=int, default=500)
    p = sub.add_parser("speed")
    p.add_argument("--trials", type=int, default=400)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if getattr(args, "results", None) and not args.window:
        parser.error("--results needs --window: a recorded seed's figures are those at the window's end")
    {"learning": learning, "eval": eval_speed, "speed": training_speed}[args.what](args)


if __name__ == "__main__":
    main()
