"""Ingest speed: metric rows per second from run logs into the registry.

Writes run logs as workers do (RunLog, 10 metrics per event), then times one ingest pass
into a fresh registry. Beside it, the floor a user could reach by hand: the same rows
inserted by plain sqlite3 `executemany` into the same table, with nothing to parse.

    python bench/ingest.py [--rows 1000000] [--runs 4]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path


def one_round(rows: int, n_runs: int) -> tuple[float, float]:
    from sqlmodel import Session

    from neurorl_cli.home import find_home
    from neurorl_cli.registry import db
    from neurorl_cli.registry.ingest import ingest
    from neurorl_cli.registry.models import Experiment, Run
    from neurorl_cli.runlog import RunLog

    root = Path(tempfile.mkdtemp(prefix="neurorl-ingest-"))
    os.environ["NEURORL_HOME"] = str(root / "home")
    db._ENGINES.clear()
    home = find_home()
    engine = db.open_registry(home)
    keys = [f"loss/k{i}" for i in range(10)]
    per_run = rows // n_runs // len(keys)
    with Session(engine) as session:
        exp = Experiment(config_hash=str(time.time_ns()), task="t", model="m", config={})
        session.add(exp)
        session.flush()
        for i in range(n_runs):
            session.add(Run(experiment_id=exp.id, seed=i, run_hash=f"{i:032d}", run_dir=str(home.runs / str(i))))
        session.commit()
    for i in range(n_runs):
        log = RunLog(home.runs / str(i), heartbeat_every=0)
        for step in range(per_run):
            log.metrics(step, {k: step * 0.5 for k in keys})
        log.close()
    total = per_run * len(keys) * n_runs

    start = time.perf_counter()
    ingest(engine)
    ours = total / (time.perf_counter() - start)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM metric").scalar() == total

    con = sqlite3.connect(root / "plain.db")
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("CREATE TABLE metric (id INTEGER PRIMARY KEY, run_id INT, attempt INT, key TEXT, step INT, value REAL, "
                "UNIQUE (run_id, attempt, key, step))")
    data = [(r, 1, k, s, s * 0.5) for r in range(n_runs) for s in range(per_run) for k in keys]
    start = time.perf_counter()
    with con:
        con.executemany("INSERT OR IGNORE INTO metric (run_id, attempt, key, step, value) VALUES (?, ?, ?, ?, ?)", data)
    plain = total / (time.perf_counter() - start)
    con.close()
    return ours, plain


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = [one_round(args.rows, args.runs) for _ in range(args.repeat)]
    ours = statistics.median(r[0] for r in results)
    plain = statistics.median(r[1] for r in results)
    print(f"ingest: {ours:,.0f} metric rows/s (median of {args.repeat}, {args.rows:,} rows from {args.runs} run logs); "
          f"plain sqlite3 executemany of the same rows: {plain:,.0f} rows/s; ratio {ours / plain:.2f}")


if __name__ == "__main__":
    main()
