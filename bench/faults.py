"""What the registry survives, measured: crash detection, concurrent writers, ingest lag.

    python bench/faults.py [--heartbeat 10] [--writers 8,16,32,64] [--workers 64] [--seconds 20]

1. Crash-detection latency: a worker process (RunLog with real heartbeats) is SIGKILLed; the
   CLI side ingests every 0.5 s until the run shows `crashed`. Expected: between the promise
   (3 heartbeat periods) + grace minus one period, and promise + grace.
2. Concurrent writers: N processes each open the registry (migrating a fresh one under the
   file lock), register an experiment with a run, and ingest that run's log 20 times. Counts
   errors ("database is locked" or any other) and checks nothing was lost.
3. Ingest lag: 64 simulated workers append metrics (10 per event, 10 events/s each) and
   heartbeats for `--seconds`; the CLI ingests in a loop as `train` does. Lag = when a row
   became visible in the registry minus when its worker wrote it.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path


def _fresh_home(prefix: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["NEURORL_HOME"] = str(root / "home")
    from neurorl_cli.registry import db

    db._ENGINES.clear()
    return root / "home"


def _make_runs(engine, home, n: int, tag: str) -> list:
    from sqlmodel import Session

    from neurorl_cli.registry.models import Experiment, Run

    with Session(engine) as session:
        exp = Experiment(config_hash=f"{tag}-{time.time_ns()}", task="t", model="m", config={"budget": {"steps": 1}})
        session.add(exp)
        session.flush()
        runs = [Run(experiment_id=exp.id, seed=i, run_hash=f"{tag}{i:030d}", run_dir=str(home.runs / f"{tag}-{i}"))
                for i in range(n)]
        session.add_all(runs)
        session.commit()
        for r in runs:
            session.refresh(r)
        session.expunge_all()
    return runs


# -- 1. crash detection ---------------------------------------------------------------------


def _beating(run_dir: str, every: float) -> None:
    from neurorl_cli.runlog import RunLog

    log = RunLog(Path(run_dir), heartbeat_every=every)
    log.started(device="cpu", versions={})
    step = 0
    while True:
        step += 1
        log.metrics(step, {"loss/x": step})
        time.sleep(0.1)


def crash_latency(every: float, grace: float, trials: int) -> list[float]:
    os.environ["NEURORL_CRASH_GRACE"] = str(grace)
    from neurorl_cli.home import find_home
    from neurorl_cli.registry import db
    from neurorl_cli.registry.ingest import ingest

    _fresh_home("neurorl-crash-")
    home = find_home()
    engine = db.open_registry(home)
    latencies = []
    for t in range(trials):
        (run,) = _make_runs(engine, home, 1, f"c{t}")
        proc = mp.get_context("spawn").Process(target=_beating, args=(run.run_dir, every))
        proc.start()
        while ingest(engine, [run.id])[run.id].status != "running":
            time.sleep(0.1)
        time.sleep(every * 1.5)  # kill at a random-ish point of the heartbeat period
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.time()
        proc.join()
        while ingest(engine, [run.id])[run.id].status != "crashed":
            time.sleep(0.5)
        latencies.append(time.time() - killed)
    return latencies


# -- 2. concurrent writers ------------------------------------------------------------------


def _writer(index: int, errors, start) -> None:
    from neurorl_cli.home import find_home
    from neurorl_cli.registry import db
    from neurorl_cli.registry.ingest import ingest
    from neurorl_cli.runlog import RunLog

    start.wait()
    try:
        home = find_home()
        engine = db.open_registry(home)
        (run,) = _make_runs(engine, home, 1, f"w{index}")
        log = RunLog(Path(run.run_dir), heartbeat_every=0)
        for i in range(20):
            log.metrics(i, {"loss/a": i, "loss/b": -i})
            ingest(engine, [run.id])
        log.close()
    except Exception as exc:  # noqa: BLE001  (what we count)
        errors.put(f"{type(exc).__name__}: {exc}"[:300])


def concurrent_writers(n: int) -> tuple[int, list[str], float]:
    home = _fresh_home(f"neurorl-writers{n}-")
    ctx = mp.get_context("fork")
    errors, start = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_writer, args=(i, errors, start)) for i in range(n)]
    for p in procs:
        p.start()
    began = time.perf_counter()
    start.set()
    for p in procs:
        p.join()
    took = time.perf_counter() - began
    found = []
    while not errors.empty():
        found.append(errors.get())
    import sqlite3

    con = sqlite3.connect(home / "registry.db")
    rows = con.execute("SELECT COUNT(*) FROM metric").fetchone()[0]
    runs = con.execute("SELECT COUNT(*) FROM run").fetchone()[0]
    con.close()
    if not found and (rows != n * 40 or runs != n):
        found.append(f"lost data: {runs} runs, {rows} metric rows (expected {n}, {n * 40})")
    return n, found, took


# -- 3. ingest lag --------------------------------------------------------------------------


def _simulated_worker(run_dir: str, seconds: float, start) -> None:
    from neurorl_cli.runlog import RunLog

    start.wait()
    log = RunLog(Path(run_dir), heartbeat_every=1.0)
    log.started(device="cpu", versions={})
    step, end = 0, time.time() + seconds
    while time.time() < end:
        step += 1
        now = time.time()
        log.metrics(step, {"lag/written": now, **{f"loss/k{i}": step for i in range(9)}})
        time.sleep(0.1)
    log.finish("completed")
    log.close()


def ingest_lag(workers: int, seconds: float) -> dict:
    from neurorl_cli.home import find_home
    from neurorl_cli.registry import db
    from neurorl_cli.registry.ingest import ingest

    _fresh_home("neurorl-lag-")
    home = find_home()
    engine = db.open_registry(home)
    runs = _make_runs(engine, home, workers, "g")
    ids = [r.id for r in runs]
    ctx = mp.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=_simulated_worker, args=(r.run_dir, seconds, start)) for r in runs]
    for p in procs:
        p.start()
    start.set()
    lags, last_id, passes, pass_times = [], 0, 0, []
    while True:
        alive = any(p.is_alive() for p in procs)
        t0 = time.time()
        ingest(engine, ids)
        visible = time.time()
        pass_times.append(visible - t0)
        passes += 1
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT id, value FROM metric WHERE key = 'lag/written' AND id > ?", (last_id,)).fetchall()
            conn.rollback()
        for row_id, written in rows:
            lags.append(visible - written)
            last_id = max(last_id, row_id)
        if not alive:
            break
        time.sleep(max(0.0, 1.0 - (time.time() - t0)))  # the dispatchers' poll: one ingest a second
    for p in procs:
        p.join()
    lags.sort()
    return {
        "events": len(lags), "passes": passes,
        "p50": lags[len(lags) // 2], "p95": lags[int(len(lags) * 0.95)], "max": lags[-1],
        "pass_mean": statistics.mean(pass_times), "pass_max": max(pass_times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heartbeat", type=float, default=10.0, help="heartbeat period (s); default as shipped")
    parser.add_argument("--grace", type=float, default=15.0, help="crash grace (s); default as shipped")
    parser.add_argument("--crashes", type=int, default=3)
    parser.add_argument("--writers", default="8,16,32,64,128")
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores")

    lat = crash_latency(args.heartbeat, args.grace, args.crashes)
    promise = 3 * args.heartbeat
    print(f"crash detection (heartbeat {args.heartbeat:g} s, promise {promise:g} s, grace {args.grace:g} s): "
          f"{', '.join(f'{x:.1f}' for x in lat)} s after SIGKILL (bound {promise + args.grace:g} s)")

    best = 0
    for n in [int(x) for x in args.writers.split(",")]:
        n, errors, took = concurrent_writers(n)
        print(f"{n:4d} concurrent writers: {len(errors)} errors, {took:.1f} s" + (f"  e.g. {errors[0]}" if errors else ""))
        if errors:
            break
        best = n
    print(f"most concurrent writers with zero errors: {best} (of those tried)")

    lag = ingest_lag(args.workers, args.seconds)
    print(f"ingest lag, {args.workers} workers x 10 events/s x 10 metrics for {args.seconds:g} s: "
          f"{lag['events']} events, p50 {lag['p50']:.2f} s, p95 {lag['p95']:.2f} s, max {lag['max']:.2f} s; "
          f"ingest pass mean {lag['pass_mean'] * 1000:.0f} ms, max {lag['pass_max'] * 1000:.0f} ms over {lag['passes']} passes")


if __name__ == "__main__":
    main()
