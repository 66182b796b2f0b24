"""The database URL as `validate` and the start of `run` check it without SQLAlchemy
(runner/db/url.py), held to SQLAlchemy's own reading of the same text: what one takes
the other takes, with the same dialect, driver, password and port; the same problems
are told; and `validate` imports no SQLAlchemy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from runner.core.secrets import redact
from runner.db.connect import driver_problem, parse_url, sqlalchemy_url
from runner.db.url import DRIVER_MODULES, DatabaseUrlError, check_url

ROOT = Path(__file__).resolve().parents[2]

PIECES = st.sampled_from(
    [
        "sqlite", "postgresql", "mysql", "mariadb", "postgres", "+", "psycopg", "pymysql",
        "://", ":", "/", "//", "@", "?", "&", "=", "[", "]", "%40", "%2F", "#", " ", "\n",
        "user", "pw", "host", "5432", "0", "65536", "x1", "db", "password", "token",
        "é", "١٢", "::1", ".", "-", "_",
    ]
)  # fmt: skip


def sqlalchemys(text: str) -> tuple[str, str | None, int | None] | str:
    """SQLAlchemy's reading: (drivername, password, port), or the kind of refusal."""
    try:
        url = make_url(text)
    except ArgumentError:
        return "form"
    except ValueError:
        return "port"
    return url.drivername, url.password if isinstance(url.password, str) else None, url.port


def ours(text: str) -> tuple[str, str | None, int | None] | str:
    try:
        url = check_url(text, Path("/base"))
    except DatabaseUrlError as exc:
        return "form" if "not a database URL" in str(exc) else "port"
    parsed = sqlalchemy_url(url)  # the URL the connection is made from
    password = parsed.password if isinstance(parsed.password, str) else None
    return url.drivername, password, parsed.port


@settings(max_examples=3000, deadline=None)
@given(st.lists(PIECES, max_size=12).map("".join))
def test_the_url_is_read_as_sqlalchemy_reads_it(text: str) -> None:
    theirs = sqlalchemys(text)
    if theirs not in ("form", "port") and isinstance(theirs, tuple):
        port = theirs[2]
        if port is not None and not 0 < port < 65536:
            theirs = "range"
    mine = ours(text) if theirs != "range" else _range(text)
    assert mine == theirs, text


def _range(text: str) -> str:
    with pytest.raises(DatabaseUrlError, match="is not a TCP port"):
        check_url(text, Path("/base"))
    return "range"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("moodle.db", "not a database URL"),
        ("postgresql+psycopg://u@h:54x2/moodle", "the port in the database URL is not a number"),
        ("postgresql+psycopg://u@h:70000/moodle", "port 70000 in the database URL is not a TCP"),
    ],
)
def test_a_bad_url_is_told_as_before(text: str, said: str) -> None:
    with pytest.raises(DatabaseUrlError, match=said):
        check_url(text, Path("/base"))
    with pytest.raises(DatabaseUrlError, match=said):
        parse_url(text, Path("/base"))


@pytest.mark.parametrize(
    "text",
    [
        "sqlite:///moodle.db",
        "postgresql+psycopg://u@h/moodle",
        "mysql+pymysql://u@h/moodle",
        "postgresql://u@h/moodle",  # SQLAlchemy's default driver (psycopg2 before 2.1)
        "postgresql+psycopg2://u@h/moodle",  # not installed here
        "postgres://u@h/moodle",  # no such dialect
        "mysql://u@h/moodle",  # MySQLdb
        "oracle+oracledb://u@h/x",
        "nosuch+driver://u@h/x",
    ],
)
def test_a_driver_found_by_its_module_is_one_sqlalchemy_takes(text: str) -> None:
    """A driver found by its module's name is one SQLAlchemy's dialect imports; anything
    else gets SQLAlchemy's own word (tests/cases/bad_playbooks/database_*)."""
    if check_url(text, Path("/base")).driver_found():
        assert driver_problem(make_url(text)) is None


def test_every_known_driver_names_the_module_its_dialect_imports() -> None:
    for (backend, driver), module in DRIVER_MODULES.items():
        name = f"{backend}+{driver}" if driver else backend
        dialect = make_url(f"{name}://").get_dialect()
        try:
            dbapi = dialect.import_dbapi()
        except ModuleNotFoundError as exc:
            assert exc.name == module, name
        else:
            assert dbapi.__name__.split(".")[0] == module, name


def test_the_password_and_secret_parameters_are_masked_once_checked() -> None:
    check_url("postgresql+psycopg://u:s%40cr3tpw@h/moodle?sslpassword=k3yphrase", Path("/"))
    assert redact("s@cr3tpw and k3yphrase") == "*** and ***"


def test_a_relative_sqlite_file_is_the_playbooks() -> None:
    url = sqlalchemy_url(check_url("sqlite:///site/moodle.db", Path("/srv/feeds")))
    assert url.database == "/srv/feeds/site/moodle.db"


def test_validate_imports_no_sqlalchemy_for_a_playbook_with_a_database() -> None:
    script = (
        "import sys\n"
        "from runner.cli.main import main\n"
        f"code = main(['validate', {str(ROOT / 'playbooks' / 'nightly.yml')!r}])\n"
        "print(code, 'sqlalchemy' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.splitlines()[-1] == "0 False", done.stdout + done.stderr
