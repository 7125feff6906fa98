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
