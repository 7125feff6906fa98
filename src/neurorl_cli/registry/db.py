"""The registry's SQLite engine: pragmas, schema upgrades under a file lock, backups.

Every command that opens the registry for writing first brings its schema to the newest
revision, under a file lock and after a `VACUUM INTO` backup of an existing file. A file
from a newer schema than this neurorl knows is refused and left untouched.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from filelock import FileLock
from sqlalchemy import Engine, create_engine, event

from neurorl_cli.home import bundled_dir
from neurorl_cli.atomic import CannotWrite
from neurorl_cli.errors import UserError, WorkFailed
from neurorl_cli.home import Home, find_home

BUSY_TIMEOUT_MS = 60_000


@dataclass
class SchemaState:
    current: str | None
    head: str
    known: list[str]  # oldest first

    @property
    def pending(self) -> list[str]:
        if self.current is None:
            return self.known
        return self.known[self.known.index(self.current) + 1 :] if self.current in self.known else []

    @property
    def too_new(self) -> bool:
        return self.current is not None and self.current not in self.known


def _alembic_config():
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(bundled_dir("migrations")))
    return cfg


def known_revisions() -> list[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def _damaged(path: Path, why: str) -> WorkFailed:
    return WorkFailed(f"the registry {path} is damaged ({why}); nothing was changed: restore a copy "
                      f"(`neurorl db backup FILE` makes one; each schema upgrade leaves one in {path.parent / 'backups'}), "
                      "or set NEURORL_HOME elsewhere")


def check_intact(path: Path) -> None:
    """A registry that is not an SQLite file, or is shorter than its header says (a truncated
    copy), is reported before any command reads half of it. Reads 100 bytes."""
    with open(path, "rb") as fh:
        header = fh.read(100)
    if not header:
        return  # an empty file: SQLite treats it as a new database
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        raise _damaged(path, "not an SQLite database")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The header's page count is valid when its change counter matches (SQLite 3.7.0+ files).
    if header[24:28] == header[92:96] and pages and path.stat().st_size < pages * page_size:
        raise _damaged(path, f"truncated: {path.stat().st_size:,} of {pages * page_size:,} bytes")


def current_revision(path: Path) -> str | None:
    if not path.exists():
        return None
    check_intact(path)
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        row = con.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None
    except sqlite3.OperationalError:
        return None
    except sqlite3.DatabaseError as exc:
        raise _damaged(path, str(exc)) from exc
    finally:
        con.close()


def schema_state(path: Path) -> SchemaState:
    known = known_revisions()
    return SchemaState(current=current_revision(path), head=known[-1], known=known)


# File systems where SQLite's locks do not hold (or hold only sometimes): a registry there
# can be corrupted by two commands at once. Run directories may live there; the registry not.
NETWORK_FS = {"nfs", "nfs4", "cifs", "smbfs", "smb3", "lustre", "gpfs", "beegfs", "ceph", "glusterfs",
              "fuse.sshfs", "fuse.glusterfs", "fuse.cephfs", "9p", "afs", "ncpfs", "davfs", "fuse.rclone"}
MOUNTS_ENV = "NEURORL_MOUNTS"  # another mount table than /proc/mounts (tests)


def _unescape(field: str) -> str:
    # /proc/mounts writes space, tab, newline and backslash in paths as octal escapes.
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def filesystem_type(path: Path, mounts: str | None = None) -> str | None:
    """The type of the file system holding `path` (its deepest mount point), from a mount table."""
    if mounts is None:
        try:
            mounts = Path(os.environ.get(MOUNTS_ENV) or "/proc/mounts").read_text()
        except OSError:
            return None  # no mount table (not Linux): nothing to say
    path = Path(os.path.abspath(path))
    best, kind = -1, None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = Path(_unescape(fields[1]))
        if (path == point or point in path.parents) and len(point.parts) > best:
            best, kind = len(point.parts), fields[2]
    return kind


def refuse_network_fs(folder: Path, mounts: str | None = None) -> None:
    # Resolve symbolic links in the part that exists (the registry folder may not, yet).
    folder = Path(os.path.abspath(folder))
    probe, rest = folder, []
    while not probe.exists() and probe != probe.parent:
        probe, rest = probe.parent, [probe.name, *rest]
    kind = filesystem_type(probe.resolve().joinpath(*rest), mounts)
    if kind is not None and (kind in NETWORK_FS or kind.split(".")[0] in NETWORK_FS):
        raise UserError(
            f"the registry folder {folder} is on {kind}, a network file system where SQLite's locks are unsafe: "
            f"set NEURORL_HOME to a folder on a local disk (run directories may stay there with NEURORL_RUNS)"
        )


def ensure_writable(home: Home) -> None:
    refuse_network_fs(home.root)
    try:
        home.root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the registry folder {home.root} ({exc.strerror}): set NEURORL_HOME to a writable folder") from exc
    target = home.registry if home.registry.exists() else home.root
    if not os.access(target, os.W_OK):
        raise UserError(f"the registry {target} is not writable: set NEURORL_HOME to a writable folder or fix its permissions")


def backup(path: Path, target: Path) -> Path:
    """A consistent copy of a live registry (VACUUM INTO works while others write)."""
    target = Path(target)
    if target.exists():
        raise UserError(f"{target} exists already: give a new file name")
    target.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        con.execute("VACUUM INTO ?", (str(target),))
    except sqlite3.Error as exc:  # a full disk or a vanished folder: no half copy is left
        target.unlink(missing_ok=True)
        raise CannotWrite(f"cannot write {target}: {exc}") from exc
    finally:
        con.close()
    return target


def upgrade(home: Home) -> list[str]:
    """Bring the registry to the newest revision; returns the revisions applied."""
    state = schema_state(home.registry)
    if state.too_new:
        raise UserError(
            f"the registry {home.registry} has schema {state.current}, newer than this neurorl "
            f"knows (newest {state.head}): upgrade neurorl; the registry was not touched"
        )
    if not state.pending:
        return []
    with FileLock(str(home.root / "registry.lock"), timeout=BUSY_TIMEOUT_MS / 1000):
        state = schema_state(home.registry)  # another process may have upgraded meanwhile
        if not state.pending:
            return []
        if state.current is not None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
            backup(home.registry, home.backups / f"registry-{stamp}-{state.current}.db")
        from alembic import command

        cfg = _alembic_config()
        # Batch mode rebuilds a table by copy-and-move, which enforced foreign keys forbid
        # (dropping a table that others reference); they are checked once the revisions ran.
        engine = _engine(home.registry, foreign_keys=False)
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            cfg.attributes["runs_root"] = str(home.runs)  # stored paths become relative to it
            command.upgrade(cfg, "head")
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"schema upgrade would break {len(broken)} references; rolled back")
        engine.dispose()
        return state.pending


def _engine(path: Path, foreign_keys: bool = True) -> Engine:
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        # We issue BEGIN ourselves (below), so pysqlite must not.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection):
        # IMMEDIATE takes the write lock up front: a deferred transaction that later tries
        # to write can fail with "database is locked" instead of waiting its turn.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


_ENGINES: dict[tuple[Path, Path], Engine] = {}


def open_registry(home: Home | None = None) -> Engine:
    """The registry's engine, upgraded to the newest schema (created when missing)."""
    home = home or find_home()
    ensure_writable(home)
    upgrade(home)
    key = (home.registry, home.runs)
    if key not in _ENGINES:
        engine = _engine(home.registry)
        # Paths are stored relative to the runs root (models.RunsPath): each engine knows its root.
        engine.dialect.runs_root = home.runs
        _ENGINES[key] = engine
    return _ENGINES[key]


def runs_root(engine: Engine) -> Path | None:
    """The runs root stored paths of this engine's registry are relative to (for raw SQL)."""
    return getattr(engine.dialect, "runs_root", None)
