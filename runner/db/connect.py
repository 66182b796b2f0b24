"""Database URLs: relative SQLite paths, drivers, and never a password in any message."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import NoSuchModuleError

from runner.core.errors import StepError
from runner.core.secrets import redact
from runner.db.url import DatabaseUrl, check_url

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

DRIVER_HINTS = {
    "postgresql": "install psycopg into postsync's environment (its postgresql extra):"
    " pip install 'psycopg[binary]>=3.1'",
    "mysql": "install PyMySQL into postsync's environment (its mysql extra):"
    " pip install 'PyMySQL>=1.1'",
}


def parse_url(raw: str, base: Path) -> URL:
    """A SQLAlchemy URL, once checked by runner.db.url.check_url (its form and port, its
    secrets registered); a relative SQLite file path is made relative to `base`."""
    check_url(raw, base)
    url = make_url(raw)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database).expanduser()
            url = url.set(database=str(path if path.is_absolute() else base / path))
    return url


def sqlalchemy_url(url: DatabaseUrl) -> URL:
    """SQLAlchemy's URL of a checked one, a relative SQLite file's path made absolute."""
    return parse_url(url.text, url.base)


def _scheme_for(drivername: str) -> str:
    """The scheme postsync's driver for this database uses (e.g. postgres ->
    postgresql+psycopg); '' when it has none."""
    backend = drivername.split("+", 1)[0]
    if backend in ("postgres", "postgresql"):
        return "postgresql+psycopg"
    if backend in ("mysql", "mariadb"):
        return "mysql+pymysql"
    return ""


def driver_problem(url: URL) -> str | None:
    """Why this URL's database driver cannot be used here, if it cannot."""
    wanted = _scheme_for(url.drivername)
    use = f" (use {wanted}://...)" if wanted and wanted != url.drivername else ""
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        return f"no SQLAlchemy dialect for {url.drivername!r}{use}"
    try:
        dialect.import_dbapi()
    except ModuleNotFoundError as exc:
        if use:
            return f"database driver {exc.name!r} is not installed{use}"
        hint = DRIVER_HINTS.get(url.get_backend_name(), "install the driver")
        return f"database driver {exc.name!r} is not installed: {hint}"
    return None


def masked(url: URL) -> str:
    """The URL as it may be printed: its password and secret parameters masked."""
    return redact(url.render_as_string(hide_password=True))


@dataclass(frozen=True)
class Timeouts:
    """Seconds to connect, and to wait for a lock another writer holds."""

    connect: float = 10.0
    lock: float = 30.0


def _sqlite_pragmas(lock_timeout: float, read_only: bool) -> Callable[[Any, Any], None]:
    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        # The sqlite3 module's own transaction handling defers BEGIN and breaks SAVEPOINT;
        # turn it off and let SQLAlchemy's begin event (below) emit BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not read_only:
            # WAL lets a reader (a preview) coexist with a writer; a preview never
            # changes the journal mode (it changes nothing)
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        # a busy timeout turns a lock conflict into a wait instead of an error
        cursor.execute(f"PRAGMA busy_timeout={int(lock_timeout * 1000)}")
        # a larger page cache (32 MiB) keeps the indexes a batch updates in memory
        cursor.execute("PRAGMA cache_size=-32768")
        cursor.close()

    return pragmas


def _sqlite_read_only(url: URL) -> URL:
    """The SQLite file opened read-only (SQLite's `mode=ro`: no write possible).

    A database in WAL mode would still get its -wal and -shm files made beside it by a
    reader; unless such files are there already (a writer is using it, or one died),
    the file is opened `immutable` as well, which makes nothing. That is safe because
    the only writer of a postsync SQLite database is postsync, which a preview's lock
    keeps out (Moodle itself does not run on SQLite).
    """
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return url
    query = {**url.query, "mode": "ro", "uri": "true"}
    if not any(os.path.lexists(database + end) for end in ("-wal", "-shm", "-journal")):
        query["immutable"] = "1"
    return url.set(database=f"file:{quote(database)}", query=query)


def _server_read_only(statement: str) -> Callable[[Any, Any], None]:
    def read_only(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(statement)
        cursor.close()
        dbapi_connection.commit()  # a SET undone by the pool's rollback would not hold

    return read_only


#: the session made read-only: the server refuses any write of a preview
READ_ONLY_SESSION = {
    "postgresql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
    "mysql": "SET SESSION TRANSACTION READ ONLY",
    "mariadb": "SET SESSION TRANSACTION READ ONLY",
}


def _mysql_connected(dbapi_connection: Any, _record: Any) -> None:
    """Connected: statements may take as long as they need (PyMySQL applies its
    `_read_timeout` to every later read)."""
    if hasattr(dbapi_connection, "_read_timeout"):
        dbapi_connection._read_timeout = None


def _connect_args(url: URL, timeouts: Timeouts) -> dict[str, Any]:
    """The driver's own timeouts, unless the URL sets them."""
    backend, query = url.get_backend_name(), url.query
    if backend == "postgresql":
        args: dict[str, Any] = {}
        if "connect_timeout" not in query:
            args["connect_timeout"] = max(1, round(timeouts.connect))
        if "options" not in query:
            args["options"] = f"-c lock_timeout={int(timeouts.lock * 1000)}"
        return args
    if backend in ("mysql", "mariadb"):
        args = {}
        if "connect_timeout" not in query:
            args["connect_timeout"] = max(1, round(timeouts.connect))
            # PyMySQL's connect_timeout covers the TCP connect only: the server's
            # greeting is read with read_timeout (lifted once connected: _mysql_connected)
            args["read_timeout"] = args["connect_timeout"]
        if "init_command" not in query:
            args["init_command"] = (
                f"SET SESSION innodb_lock_wait_timeout = {max(1, round(timeouts.lock))}"
            )
        return args
    return {}


def connect(
    url: URL,
    *,
    must_exist: bool = False,
    timeouts: Timeouts | None = None,
    read_only: bool = False,
) -> Engine:
    """An Engine for `url`; StepError (exit 3) with an install hint for a missing driver.

    With `must_exist`, a SQLite file that is not there is an error rather than a new,
    empty database. With `read_only` (a preview), every session is read-only: SQLite's
    file opened with mode=ro, a server session set READ ONLY (a SELECT-only user is
    enough, and any write would be refused).
    """
    timeouts = timeouts or Timeouts()
    if must_exist and url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not Path(database).is_file():
            raise StepError(
                f"database file {database} does not exist"
                " (create one with: postsync db init sqlite:///PATH)"
            )
    reason = driver_problem(url)
    if reason:
        raise StepError(reason)
    backend = url.get_backend_name()
    if read_only and backend == "sqlite":
        url = _sqlite_read_only(url)
    engine = create_engine(
        url, future=True, pool_pre_ping=False, connect_args=_connect_args(url, timeouts)
    )
    if backend in ("mysql", "mariadb") and "connect_timeout" not in url.query:
        event.listen(engine, "connect", _mysql_connected)
    if read_only and backend in READ_ONLY_SESSION:
        event.listen(engine, "connect", _server_read_only(READ_ONLY_SESSION[backend]))
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas(timeouts.lock, read_only))
        # IMMEDIATE: a writer takes the write lock (waiting up to the busy timeout) when
        # its transaction starts; a deferred transaction that reads first cannot wait
        # for it later (SQLite refuses its upgrade at once when another writer
        # committed meanwhile). A preview only reads: plain (deferred) BEGIN.
        begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(begin))
    return engine
