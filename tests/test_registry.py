"""The registry file: migrations, refusal of newer schemas, backups, pragmas."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from neurorl_cli.errors import UserError
from neurorl_cli.home import find_home
from neurorl_cli.registry import db, models  # noqa: F401  (models fill the metadata)

from .conftest import cli


def test_blank_database_migrates_to_the_metadata():
    engine = db.open_registry()
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []


def test_pragmas():
    engine = db.open_registry()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.BUSY_TIMEOUT_MS


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_newer_schema_is_refused_untouched():
    db.open_registry()
    path = find_home().registry
    con = sqlite3.connect(path)
    con.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    before = _digest(path)
    db._ENGINES.clear()
    with pytest.raises(UserError, match="newer than this neurorl"):
        db.open_registry()
    proc = cli("runs", "list")
    assert proc.returncode == 2 and "newer than this neurorl" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert _digest(path) == before


def test_backup_is_a_consistent_copy(tmp_path):
    cli("db", "upgrade", check=True)
    proc = cli("db", "backup", str(tmp_path / "copy.db"), check=True)
    assert "copy.db" in proc.stdout
    con = sqlite3.connect(tmp_path / "copy.db")
    assert con.execute("SELECT version_num FROM alembic_version").fetchone()[0] == db.known_revisions()[-1]
    assert cli("db", "backup", str(tmp_path / "copy.db")).returncode == 2  # never overwrites


def test_status_reads_only(neurorl_home):
    proc = cli("db", "status", "--json", check=True)
    assert '"pending": [' in proc.stdout and not (neurorl_home / "registry.db").exists()


def test_migrations_ship_with_the_package():
    from neurorl_cli.catalog import bundled_dir

    assert (bundled_dir("migrations") / "env.py").is_file()
    assert any((bundled_dir("migrations") / "versions").glob("0001_*.py"))


def test_upgrade_keeps_data_and_backs_up_first():
    from alembic import command

    home = find_home()
    home.root.mkdir(parents=True)
    cfg = db._alembic_config()
    engine = db._engine(home.registry)
    with engine.begin() as conn:  # a registry left at the first revision, with data in it
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001_initial")
        conn.exec_driver_sql(
            "INSERT INTO experiment (id, config_hash, task, model, config, tags, created) "
            "VALUES (1, 'h', 't', 'm', '{}', '[]', '2026-01-01 00:00:00')")
        conn.exec_driver_sql(
            "INSERT INTO run (id, experiment_id, seed, run_hash, status, attempt, launcher, run_dir, steps_done, "
            "versions, log_offset, created) VALUES (1, 1, 0, 'r', 'completed', 1, 'local', '/x', 5, '{}', 0, "
            "'2026-01-01 00:00:00')")
        conn.exec_driver_sql(
            "INSERT INTO checkpoint (id, run_id, attempt, step, path, sha256, created) "
            "VALUES (1, 1, 1, 5, 'c', 's', '2026-01-01 00:00:00')")
        conn.exec_driver_sql(
            "INSERT INTO evaluation (id, checkpoint_id, protocol, protocol_hash, \"select\", score, trials, metrics, created) "
            "VALUES (1, 1, 'default', 'p', 'fraction_correct', 0.9, 10, '{}', '2026-01-01 00:00:00')")
        conn.exec_driver_sql(
            "INSERT INTO trial (evaluation_id, \"index\", env, reward, steps, conditions) VALUES (1, 0, 0, 1.0, 3, '{}')")
    engine.dispose()
    db._ENGINES.clear()
    upgraded = db.open_registry(home)
    with upgraded.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == db.known_revisions()[-1]
        assert conn.exec_driver_sql("SELECT score, higher_is_better FROM evaluation").one() == (0.9, 1)
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM trial").scalar() == 1
    (backup,) = home.backups.glob("registry-*-0001_initial.db")
    con = sqlite3.connect(backup)
    assert con.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "0001_initial"
