"""Database URLs: relative SQLite paths, drivers, and never a password in any message."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from runner.core.errors import StepError
from runner.core.secrets import register

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
    except ArgumentError:
        raise DatabaseUrlError(
            "not a database URL (e.g. sqlite:///moodle.db, "
            "postgresql+psycopg://user@host/moodle, mysql+pymysql://user@host/moodle)"
        ) from None
    register(url.password if isinstance(url.password, str) else None)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database).expanduser()
            url = url.set(database=str(path if path.is_absolute() else base / path))
    return url


def masked(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    # The sqlite3 module's own transaction handling defers BEGIN and breaks SAVEPOINT;
    # turn it off and let SQLAlchemy's begin event (below) emit BEGIN itself.
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    # WAL lets a reader (another postsync --check) coexist with a writer; a busy
    # timeout turns a short lock conflict into a wait instead of an error.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # a larger page cache (32 MiB) keeps the indexes a batch updates in memory
    cursor.execute("PRAGMA cache_size=-32768")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def connect(url: URL, *, must_exist: bool = False) -> Engine:
    """An Engine for `url`; StepError (exit 3) with an install hint for a missing driver.

    With `must_exist`, a SQLite file that is not there is an error rather than a new,
    empty database.
    """
    if must_exist and url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not Path(database).is_file():
            raise StepError(
                f"database file {database} does not exist"
                " (create one with: postsync db init sqlite:///PATH)"
            )
    try:
        engine = create_engine(url, future=True, pool_pre_ping=False)
    except NoSuchModuleError:
        raise StepError(f"no SQLAlchemy dialect for {url.drivername!r}") from None
    except ModuleNotFoundError as exc:
        hint = DRIVER_HINTS.get(url.get_backend_name(), "install the driver")
        raise StepError(f"database driver {exc.name!r} is not installed: {hint}") from None
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine
