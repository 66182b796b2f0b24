"""Database URLs: relative SQLite paths, drivers, and never a password in any message."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from runner.core.errors import StepError
from runner.core.secrets import SECRET_PARAMETERS, redact, register

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

DRIVER_HINTS = {
    "postgresql": "pip install 'postsync[postgresql]' (psycopg)",
    "mysql": "pip install 'postsync[mysql]' (PyMySQL)",
}


class DatabaseUrlError(ValueError):
    """The URL cannot be used; the message never contains the password."""


def parse_url(raw: str, base: Path) -> URL:
    """A SQLAlchemy URL; a relative SQLite file path is made relative to `base`."""
    try:
        url = make_url(raw)
    except ValueError as exc:  # a port that is not a number
        if "int()" not in str(exc):
            raise
        raise DatabaseUrlError(
            "the port in the database URL is not a number (e.g. postgresql+psycopg://"
            "user@host:5432/moodle)"
        ) from None
    except ArgumentError:
        raise DatabaseUrlError(
            "not a database URL (e.g. sqlite:///moodle.db, "
            "postgresql+psycopg://user@host/moodle, mysql+pymysql://user@host/moodle)"
        ) from None
    register(url.password if isinstance(url.password, str) else None)
    if url.port is not None and not 0 < url.port < 65536:
        raise DatabaseUrlError(f"port {url.port} in the database URL is not a TCP port (1-65535)")
    for key, value in url.query.items():
        if key.lower() in SECRET_PARAMETERS:
            for item in (value,) if isinstance(value, str) else value:
                register(item)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database).expanduser()
            url = url.set(database=str(path if path.is_absolute() else base / path))
    return url


def masked(url: URL) -> str:
    """The URL as it may be printed: its password and secret parameters masked."""
    return redact(url.render_as_string(hide_password=True))


@dataclass(frozen=True)
class Timeouts:
    """Seconds to connect, and to wait for a lock another writer holds."""

    connect: float = 10.0
    lock: float = 30.0


def _sqlite_pragmas(lock_timeout: float) -> Callable[[Any, Any], None]:
    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        # The sqlite3 module's own transaction handling defers BEGIN and breaks SAVEPOINT;
        # turn it off and let SQLAlchemy's begin event (below) emit BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets a reader (another postsync --check) coexist with a writer; a busy
        # timeout turns a lock conflict into a wait instead of an error.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(lock_timeout * 1000)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # a larger page cache (32 MiB) keeps the indexes a batch updates in memory
        cursor.execute("PRAGMA cache_size=-32768")
        cursor.close()

    return pragmas


def _sqlite_begin(conn: Connection) -> None:
    # IMMEDIATE: the write lock is taken (waiting up to the busy timeout) when the
    # transaction starts. A deferred transaction that reads first cannot wait for it
    # later: SQLite refuses its upgrade to a writer at once when another writer
    # committed meanwhile.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


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


def connect(url: URL, *, must_exist: bool = False, timeouts: Timeouts | None = None) -> Engine:
    """An Engine for `url`; StepError (exit 3) with an install hint for a missing driver.

    With `must_exist`, a SQLite file that is not there is an error rather than a new,
    empty database.
    """
    timeouts = timeouts or Timeouts()
    if must_exist and url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not Path(database).is_file():
            raise StepError(
                f"database file {database} does not exist"
                " (create one with: postsync db init sqlite:///PATH)"
            )
    try:
        engine = create_engine(
            url, future=True, pool_pre_ping=False, connect_args=_connect_args(url, timeouts)
        )
    except NoSuchModuleError:
        raise StepError(f"no SQLAlchemy dialect for {url.drivername!r}") from None
    except ModuleNotFoundError as exc:
        hint = DRIVER_HINTS.get(url.get_backend_name(), "install the driver")
        raise StepError(f"database driver {exc.name!r} is not installed: {hint}") from None
    if url.get_backend_name() in ("mysql", "mariadb") and "connect_timeout" not in url.query:
        event.listen(engine, "connect", _mysql_connected)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas(timeouts.lock))
        event.listen(engine, "begin", _sqlite_begin)
    return engine
