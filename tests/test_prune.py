"""`neurorl prune` and `neurorl runs rm`: say what goes, then free it; rows stay consistent.
And the schema revision that prune needs, applied to a populated registry."""

from __future__ import annotations

import json
import sqlite3

import pytest

from neurorl_cli.home import find_home
from neurorl_cli.registry import db

from .conftest import cli

TINY = ["conditioning-fixed", "distributional-td", "--trials", "40", "--checkpoint-every", "10"]


def _rows(home, sql, *args):
    con = sqlite3.connect(home / "registry.db")
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


@pytest.mark.slow
def test_prune_keeps_best_and_last_then_rm_removes_runs(neurorl_home):
    cli("train", *TINY, "--seeds", "0-1", "--jobs", "2", check=True)
    files = sorted(neurorl_home.glob("runs/*/checkpoints/step_*.zip"))
    assert len(files) == 8
    assert "never evaluated" in cli("prune", "--yes", check=True).stdout  # best unknown: nothing goes
    assert len(list(neurorl_home.glob("runs/*/checkpoints/step_*.zip"))) == 8
    cli("eval", "e1", "--all-checkpoints", "--trials", "50", check=True)
    best = {r: s for r, s in _rows(neurorl_home, "SELECT c.run_id, c.step FROM evaluation e JOIN checkpoint c "
                                                  "ON c.id = e.checkpoint_id ORDER BY e.score DESC")}  # lowest wins
    dry = cli("prune", "--dry-run", check=True)
    assert "prune frees" in dry.stdout and len(list(neurorl_home.glob("runs/*/checkpoints/step_*.zip"))) == 8
    refused = cli("prune")  # no terminal to ask on, no --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr
    cli("prune", "--yes", check=True)
    for run_id in (1, 2):
        kept = {s for (s,) in _rows(neurorl_home, "SELECT step FROM checkpoint WHERE run_id = ? AND pruned IS NULL", run_id)}
        assert kept == {40, best[run_id]}
        on_disk = {int(p.stem.split("_")[1]) for p in neurorl_home.glob(f"runs/00000{run_id}-*/checkpoints/step_*.zip")}
        assert on_disk == kept
    # rows and evaluations of pruned checkpoints stay; eval finds nothing missing
    assert _rows(neurorl_home, "SELECT COUNT(*) FROM evaluation")[0][0] == 8
    again = cli("eval", "e1", "--all-checkpoints", "--trials", "50", check=True)
    assert "evaluated under default already" in again.stderr
    assert "nothing to prune" in cli("prune", "--yes", check=True).stdout

    run_dir = json.loads(cli("runs", "show", "r1", "--json", check=True).stdout)["run_dir"]
    cli("runs", "rm", "r1", "--yes", check=True)
    assert not (neurorl_home / "runs" / run_dir).exists() and run_dir not in str(list(neurorl_home.glob("runs/*")))
    assert _rows(neurorl_home, "SELECT COUNT(*) FROM metric WHERE run_id = 1")[0][0] == 0
    assert _rows(neurorl_home, "SELECT COUNT(*) FROM experiment")[0][0] == 1  # run 2 still holds it
    assert cli("runs", "show", "r1").returncode == 2
    cli("runs", "rm", "r2", "--yes", check=True)
    assert _rows(neurorl_home, "SELECT COUNT(*) FROM experiment")[0][0] == 0
    assert _rows(neurorl_home, "SELECT COUNT(*) FROM evaluation")[0][0] == 0
    assert not list(neurorl_home.glob("runs/0*"))


def test_checkpoint_pruned_revision_upgrades_a_populated_registry():
    from alembic import command

    home = find_home()
    home.root.mkdir(parents=True)
    cfg = db._alembic_config()
    engine = db._engine(home.registry)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002_evaluation_direction")
        conn.exec_driver_sql("INSERT INTO experiment (id, config_hash, task, model, config, tags, created) "
                             "VALUES (1, 'h', 't', 'm', '{}', '[]', '2026-01-01 00:00:00')")
        conn.exec_driver_sql("INSERT INTO run (id, experiment_id, seed, run_hash, status, attempt, launcher, run_dir, "
                             "steps_done, versions, log_offset, created) VALUES (1, 1, 0, 'r', 'completed', 1, 'local', "
                             "'/x', 5, '{}', 0, '2026-01-01 00:00:00')")
        conn.exec_driver_sql("INSERT INTO checkpoint (id, run_id, attempt, step, path, sha256, created) "
                             "VALUES (1, 1, 1, 5, 'c', 's', '2026-01-01 00:00:00')")
        conn.exec_driver_sql("INSERT INTO evaluation (id, checkpoint_id, protocol, protocol_hash, \"select\", score, "
                             "higher_is_better, trials, metrics, created) VALUES (1, 1, 'default', 'p', 'x', 0.5, 0, 10, "
                             "'{}', '2026-01-01 00:00:00')")
    engine.dispose()
    db._ENGINES.clear()
    upgraded = db.open_registry(home)
    with upgraded.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == db.known_revisions()[-1]
        assert conn.exec_driver_sql("SELECT step, pruned FROM checkpoint").one() == (5, None)
        assert conn.exec_driver_sql("SELECT score, higher_is_better FROM evaluation").one() == (0.5, 0)
    assert list(home.backups.glob("registry-*-0002_evaluation_direction.db"))
