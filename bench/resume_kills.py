"""Kills between checkpoints, then resumes: is every (key, step) shown once, and is the run whole?

    python bench/resume_kills.py [--kills 10] [--every 512] [--seed 0]

One real run (recurrent-ppo on go-no-go, a tiny LSTM, a metric every 64 steps, a checkpoint
every `--every`) is trained with `neurorl train`, and its worker SIGKILLed at a random step
between two checkpoints; `neurorl train --resume` continues it, and is killed the same way,
`--kills` times; a last resume finishes the run. Then it counts (key, step) points shown more
than once by `neurorl export --metrics`, the Python API (`api.Registry.metrics`) and the
report's curve data (`neurorl report --out`, every training_*.csv), and checks that the
checkpoint steps and each metric's steps are continuous, the curves carry the latest attempt's
values, and that nothing logged was deleted (rows stored = metric values in the run's log).

The run is named by its hash prefix, which every version of neurorl accepts, so the same
script measures older code (PYTHONPATH=old/src) for a before/after.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

N_STEPS = 64


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "neurorl_cli", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})
    if check and proc.returncode != 0:
        sys.exit(f"neurorl {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


class Log:
    """The run's events.jsonl, read as it grows."""

    def __init__(self, path: Path):
        self.path, self.offset, self.events = path, 0, []

    def poll(self) -> list[dict]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        new = []
        for raw in data[: end + 1].splitlines():
            try:
                new.append(json.loads(raw))
            except ValueError:
                pass  # a line cut short by a kill
        self.events.extend(new)
        return new


def one_attempt(args: list[str], home: Path, log: Log | None, rng: random.Random, every: int) -> tuple[Log, dict]:
    """Start `neurorl ARGS`, SIGKILL its worker at a random step between two checkpoints."""
    proc = subprocess.Popen([sys.executable, "-m", "neurorl_cli", *args], env={**os.environ, "COLUMNS": "200"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    start = len(log.events) if log else 0
    pid = attempt = None
    resumed_from = max((e["step"] for e in log.events if e["type"] == "checkpoint"), default=0) if log else 0
    # A random step past the resume point, never on a checkpoint: metrics come every N_STEPS.
    target = resumed_from + rng.randrange(N_STEPS, 2 * every, N_STEPS)
    while target % every == 0:
        target = resumed_from + rng.randrange(N_STEPS, 2 * every, N_STEPS)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if log is None:
            dirs = list((home / "runs").glob("0*"))
            if dirs:
                log = Log(dirs[0] / "events.jsonl")
            else:
                time.sleep(0.05)
                continue
        for event in log.poll():
            if event["type"] == "status" and event["status"] == "running":
                pid, attempt = event["pid"], event["attempt"]
            if pid and event["type"] == "metric" and event["attempt"] == attempt and event["step"] >= target:
                os.kill(pid, signal.SIGKILL)
                proc.wait(timeout=120)
                break
        time.sleep(0.005)
    if proc.poll() is None:
        sys.exit("the attempt neither reached its kill step nor ended")
    log.poll()
    mine = [e for e in log.events[start:] if e.get("attempt") == attempt]
    last_ck = max((e["step"] for e in log.events if e["type"] == "checkpoint"), default=0)
    last_metric = max((e["step"] for e in mine if e["type"] == "metric"), default=0)
    return log, {"attempt": attempt, "resumed_from": resumed_from, "killed_at": last_metric,
                 "last_checkpoint": last_ck, "between": last_metric > last_ck}


def doubled(table: pd.DataFrame, keys: list[str]) -> int:
    return int(table.duplicated(keys, keep="first").sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--every", type=int, default=512, help="agent steps between checkpoints")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill steps")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    every = args.every
    budget = (args.kills + 2) * 2 * every  # room for every kill, then a finish
    root = Path(tempfile.mkdtemp(prefix="neurorl-resume-kills-"))
    home = root / "home"
    os.environ["NEURORL_HOME"] = str(home)
    os.environ.pop("NEURORL_RUNS", None)
    train = ["train", "go-no-go", "recurrent-ppo", "--steps", str(budget), "--checkpoint-every", str(every),
             "--set", f"model.n_steps={N_STEPS}", "--set", f"model.batch_size={N_STEPS}",
             "--set", "model.lstm_hidden_size=16", "--set", "model.n_epochs=1"]
    began = time.time()
    log, kill = one_attempt(train, home, None, rng, every)
    kills = [kill]
    (run,) = json.loads(_cli("runs", "list", "--json").stdout)
    ref = run["run_hash"][:12]
    while len(kills) < args.kills:
        log, kill = one_attempt(["train", "--resume", ref], home, log, rng, every)
        kills.append(kill)
    _cli("train", "--resume", ref)
    trained = time.time() - began
    for k in kills:
        print(f"attempt {k['attempt']:2d}: resumed from {k['resumed_from']:6d}, killed at step {k['killed_at']:6d} "
              f"(last checkpoint {k['last_checkpoint']:6d}{', between checkpoints' if k['between'] else ''})")

    shown = json.loads(_cli("runs", "show", ref, "--json").stdout)
    exported = root / "metrics.csv"
    _cli("export", ref, "--metrics", str(exported))
    export = pd.read_csv(exported)
    from neurorl_cli import api

    frame = api.open().metrics(ref)
    report = root / "report"
    _cli("report", ref, "--out", str(report))
    curves = {p.name: pd.read_csv(p) for p in sorted(report.glob("training*.csv"))}

    log.poll()
    logged = {(e["attempt"], k, e["step"]) for e in log.events if e["type"] == "metric" for k in e["values"]}
    # From the log alone: where each attempt resumed (the last checkpoint announced before it
    # started), so what should be shown: a value stays live unless a later attempt resumed from
    # an earlier step than the value's.
    starts, last_ck = {}, -1
    for e in log.events:
        if e["type"] == "checkpoint":
            last_ck = max(last_ck, e["step"])
        elif e["type"] == "status" and e["status"] == "running" and e["attempt"] > 1:
            starts[e["attempt"]] = last_ck
    live = {(a, k, s) for a, k, s in logged if all(s <= r for b, r in starts.items() if b > a)}
    shown_rows = set(zip(frame["attempt"], frame["key"], frame["step"]))
    con = sqlite3.connect(home / "registry.db")
    stored = con.execute("SELECT COUNT(*) FROM metric").fetchone()[0]
    con.close()

    ck_steps = [c["step"] for c in shown["checkpoints"]]
    ck_files = all((Path(shown["run_dir"]) / c["path"]).is_file() for c in shown["checkpoints"])
    grid = list(range(N_STEPS, shown["steps"] + 1, N_STEPS))
    every_rollout = frame[frame["key"] == "train/steps_per_s"]["step"]  # sb3 logs it at every rollout
    # The curve's single seed must carry exactly the API's (latest attempt's) value at each step.
    curve_mismatch = 0
    for name, data in curves.items():
        key = "perf/trial_performance" if name == "training_curve.csv" else None
        if key is None:
            continue
        latest = frame[frame["key"] == key].sort_values(["step", "attempt"]).drop_duplicates("step", keep="last")
        api_values = latest.set_index("step")["value"]
        joined = data.set_index("step")["seed_0"].dropna()
        curve_mismatch += int((abs(joined - api_values.reindex(joined.index)) > 1e-9).sum())

    print(f"\nregistry and run kept in {home}")
    print(f"kills: {len(kills)} ({sum(k['between'] for k in kills)} landed between checkpoints); "
          f"attempts: {shown['attempt']}, status {shown['status']}, {shown['steps']} of {budget} steps; "
          f"training wall time {trained:.0f} s")
    print(f"doubled (key, step) points: export {doubled(export, ['run_id', 'key', 'step'])}, "
          f"API {doubled(frame, ['run_id', 'key', 'step'])}, "
          f"report curves {sum(doubled(d, ['step']) for d in curves.values())} (over {len(curves)} curve files)")
    print(f"curve values differing from the latest attempt's: {curve_mismatch}")
    print(f"checkpoints: {len(ck_steps)}, steps strictly increasing: {ck_steps == sorted(set(ck_steps))}, "
          f"files present: {ck_files}, last {ck_steps[-1] if ck_steps else None}")
    print(f"train/steps_per_s (logged every rollout) shown at every {N_STEPS} steps from {N_STEPS} to "
          f"{shown['steps']}: {sorted(every_rollout) == grid}")
    print(f"(attempt, key, step) shown vs live in the log: missing {len(live - shown_rows)}, "
          f"extra {len(shown_rows - live)} (of {len(live)} live)")
    print(f"rows stored {stored} = values logged {len(logged)}: {stored == len(logged)}; "
          f"shown {len(frame)}, superseded {stored - len(frame)}")


if __name__ == "__main__":
    main()
