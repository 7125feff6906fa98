"""Run logs land in the registry exactly once, whatever the timing."""

from __future__ import annotations

import json
import multiprocessing as mp
import time

from sqlmodel import Session

from neurorl_cli.home import find_home
from neurorl_cli.registry import db
from neurorl_cli.registry.ingest import ingest
from neurorl_cli.registry.models import Experiment, Run
from neurorl_cli.runlog import EVENTS, RunLog


def _make_runs(engine, home, n: int) -> list[Run]:
    with Session(engine) as session:
        exp = Experiment(config_hash="x" * 32, task="t", model="m", config={"budget": {"steps": 1}})
        session.add(exp)
        session.flush()
        runs = []
        for seed in range(n):
            run = Run(experiment_id=exp.id, seed=seed, run_hash=f"{seed:032d}", run_dir=str(home.runs / str(seed)))
            session.add(run)
            runs.append(run)
        session.commit()
        for r in runs:
            session.refresh(r)
        session.expunge_all()
    return runs


def _metric_count(engine, run_id=None) -> int:
    with engine.connect() as conn:
        if run_id is None:
            return conn.exec_driver_sql("SELECT COUNT(*) FROM metric").scalar()
        return conn.exec_driver_sql("SELECT COUNT(*) FROM metric WHERE run_id = ?", (run_id,)).scalar()


def test_truncated_last_line_waits_and_nothing_lands_twice():
    home = find_home()
    engine = db.open_registry(home)
    (run,) = _make_runs(engine, home, 1)
    log = RunLog(home.runs / "0", heartbeat_every=0)
    log.metrics(10, {"a": 1.0, "b": 2.0})
    log.close()
    path = home.runs / "0" / EVENTS
    whole = json.dumps({"type": "metric", "attempt": 1, "t": time.time(), "step": 20, "values": {"a": 3.0}})
    with open(path, "a") as fh:
        fh.write(whole[:25])  # a worker caught mid-write
    ingest(engine)
    assert _metric_count(engine) == 2
    ingest(engine)
    assert _metric_count(engine) == 2
    with open(path, "a") as fh:
        fh.write(whole[25:] + "\n")
    ingest(engine)
    ingest(engine)
    assert _metric_count(engine) == 3


def test_unreadable_line_is_reported_and_skipped():
    home = find_home()
    engine = db.open_registry(home)
    (run,) = _make_runs(engine, home, 1)
    (home.runs / "0").mkdir(parents=True)
    (home.runs / "0" / EVENTS).write_text(
        "{not json\n" + json.dumps({"type": "metric", "attempt": 1, "t": 0, "step": 1, "values": {"k": 1}}) + "\n"
    )
    warnings = []
    ingest(engine, warn=warnings.append)
    assert _metric_count(engine) == 1 and len(warnings) == 1


def test_passed_heartbeat_promise_shows_crashed():
    home = find_home()
    engine = db.open_registry(home)
    (run,) = _make_runs(engine, home, 1)
    (home.runs / "0").mkdir(parents=True)
    now = time.time()
    events = [
        {"type": "status", "attempt": 1, "t": now - 100, "status": "running", "host": "h", "device": "cpu"},
        {"type": "heartbeat", "attempt": 1, "t": now - 100, "step": 5, "next": now - 70},
    ]
    (home.runs / "0" / EVENTS).write_text("".join(json.dumps(e) + "\n" for e in events))
    state = ingest(engine, [run.id])
    assert state[run.id].status == "crashed"


def _writer(run_dir: str, n: int) -> None:
    log = RunLog(run_dir, heartbeat_every=0.05)
    log.started(device="cpu", versions={})
    for step in range(n):
        log.metrics(step, {"loss/a": step, "perf/b": -step})
        if step % 50 == 0:
            time.sleep(0.005)
    log.finish("completed")
    log.close()


def test_four_workers_write_while_the_cli_ingests():
    home = find_home()
    engine = db.open_registry(home)
    runs = _make_runs(engine, home, 4)
    n = 2000
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(r.run_dir, n)) for r in runs]
    for p in procs:
        p.start()
    passes = 0
    while any(p.is_alive() for p in procs):
        ingest(engine, [r.id for r in runs])
        passes += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    state = ingest(engine, [r.id for r in runs])
    assert passes > 1
    for r in runs:
        assert _metric_count(engine, r.id) == 2 * n
        assert state[r.id].status == "completed"
        assert state[r.id].step == n - 1


def test_a_checkpoint_saved_again_at_its_step_replaces_the_old_record_and_its_evaluations():
    from neurorl_cli.rollouts import verify_checkpoint

    home = find_home()
    engine = db.open_registry(home)
    (run,) = _make_runs(engine, home, 1)
    log = RunLog(home.runs / "0", heartbeat_every=0)
    log.checkpoint(0, lambda tmp: tmp.write_bytes(b"phase I, first stop"))
    log.close()
    ingest(engine)
    with engine.begin() as conn:
        ck_id = conn.exec_driver_sql("SELECT id FROM checkpoint").scalar()
        conn.exec_driver_sql(
            "INSERT INTO evaluation (checkpoint_id, protocol, protocol_hash, \"select\", score, trials, metrics, created) "
            "VALUES (?, 'p', 'h', 'reward_rate', 0.5, 10, '{}', '2026-01-01')", (ck_id,))
    # The resumed attempt is stopped again before its step count moved: same step, new file.
    log = RunLog(home.runs / "0", attempt=2, heartbeat_every=0)
    log.checkpoint(0, lambda tmp: tmp.write_bytes(b"phase I, second stop"))
    log.close()
    warnings = []
    ingest(engine, warn=warnings.append)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT attempt, path, sha256 FROM checkpoint").fetchall()
        evaluations = conn.exec_driver_sql("SELECT COUNT(*) FROM evaluation").scalar()
    assert len(rows) == 1 and rows[0][0] == 2 and evaluations == 0
    assert verify_checkpoint(run.run_dir, rows[0][1], rows[0][2]).read_bytes() == b"phase I, second stop"
    assert len(warnings) == 1 and "saved again" in warnings[0] and "1 evaluation" in warnings[0]
    ingest(engine, warn=warnings.append)  # nothing new: nothing changes, no second warning
    assert len(warnings) == 1
