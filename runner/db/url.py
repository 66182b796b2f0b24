"""A playbook's database URL, checked without importing SQLAlchemy.

`validate` and the start of `run` check the URL (its form, its port, its driver) before
anything runs; importing SQLAlchemy for that would double `validate`'s time. The URL is
read here by the grammar SQLAlchemy's make_url reads (`dialect+driver://user:password@
host:port/database?query`; tests/db/test_url.py holds the two to the same answers on
generated URLs), and the driver is found by its module's name for the drivers postsync
is used with. Anything else (an unknown dialect, a missing driver) is left to
SQLAlchemy's own check, which says what is wrong. The connection itself is made from
SQLAlchemy's URL, read from the same text (runner.db.connect.sqlalchemy_url).
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote

from runner.core.secrets import SECRET_PARAMETERS, register

#: dialect+driver://username:password@host:port/database?query, each part optional
_FORM = re.compile(
    r"(?P<name>[\w+]+)://"
    r"(?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?"
    r"(?:(?:\[(?P<ipv6>[^/?]+)\]|(?P<host>[^/:?]+))?(?::(?P<port>[^/?]*))?)?"
    r"(?:/(?P<database>[^?]*))?"
    r"(?:\?(?P<query>.*))?"
)
#: (dialect, driver) -> the module SQLAlchemy's dialect imports ("": the dialect's
#: default driver, named only where no SQLAlchemy release changed it: PostgreSQL's went
#: from psycopg2 to psycopg in 2.1)
DRIVER_MODULES = {
    ("sqlite", ""): "sqlite3",
    ("sqlite", "pysqlite"): "sqlite3",
    ("postgresql", "psycopg"): "psycopg",
    ("postgresql", "psycopg2"): "psycopg2",
    ("mysql", "pymysql"): "pymysql",
    ("mariadb", "pymysql"): "pymysql",
    ("mysql", "mysqldb"): "MySQLdb",
    ("mariadb", "mysqldb"): "MySQLdb",
}


class DatabaseUrlError(ValueError):
    """The URL cannot be used; the message never contains the password."""


@dataclass(frozen=True)
class DatabaseUrl:
    """A database URL whose form and port were checked, as the playbook renders it."""

    text: str = field(repr=False)  # may hold the password
    #: a relative SQLite file is relative to this directory (the playbook's)
    base: Path
    drivername: str

    @property
    def backend(self) -> str:
        return self.drivername.split("+", 1)[0]

    @property
    def driver(self) -> str:
        return self.drivername.partition("+")[2]

    def driver_found(self) -> bool:
        """Whether the URL names a driver postsync knows and its module is installed
        (False: SQLAlchemy's own check, runner.db.connect.driver_problem, says more)."""
        module = DRIVER_MODULES.get((self.backend, self.driver))
        return module is not None and importlib.util.find_spec(module) is not None


def check_url(text: str, base: Path) -> DatabaseUrl:
    """The URL, once its form and port are checked (DatabaseUrlError) and its password and
    secret parameters registered to be masked wherever postsync prints."""
    found = _FORM.match(text)
    if found is None:
        raise DatabaseUrlError(
            "not a database URL (e.g. sqlite:///moodle.db, "
            "postgresql+psycopg://user@host/moodle, mysql+pymysql://user@host/moodle)"
        )
    password = found["password"]
    register(unquote(password) if password is not None else None)
    port = found["port"]
    if port is not None:  # "host:" too: SQLAlchemy takes no empty port
        try:
            number = int(port)
        except ValueError:
            raise DatabaseUrlError(
                "the port in the database URL is not a number (e.g. postgresql+psycopg://"
                "user@host:5432/moodle)"
            ) from None
        if not 0 < number < 65536:
            raise DatabaseUrlError(f"port {number} in the database URL is not a TCP port (1-65535)")
    for key, value in parse_qsl(found["query"] or ""):
        if key.lower() in SECRET_PARAMETERS:
            register(value)
    return DatabaseUrl(text, base, found["name"])
