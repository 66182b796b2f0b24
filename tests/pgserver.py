"""A throwaway PostgreSQL server for the tests, started from the Debian binaries.

The server lives in a temporary directory, listens on a free loopback port and on a
private socket directory, runs without fsync (the tests never need durability), and is
stopped when the test session ends. PostgreSQL refuses to run as root: when the tests
run as root (CI containers), the server runs as the `postgres` system user that the
Debian package creates.

pytest-postgresql does the same job but cannot drop root privileges, which is how CI
runs; this module is the smallest piece that can.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar


class ServerUnavailable(Exception):
    """The PostgreSQL server binaries are missing or the server would not start."""


def find_bindir() -> Path:
    """Where initdb and pg_ctl are: $POSTSYNC_PG_BINDIR, pg_config, or Debian's layout."""
    candidates: list[str] = []
    if os.environ.get("POSTSYNC_PG_BINDIR"):
        candidates.append(os.environ["POSTSYNC_PG_BINDIR"])
    if shutil.which("pg_config"):
        probe = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=False
        )
        candidates.append(probe.stdout.strip())
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    raise ServerUnavailable(
        "PostgreSQL server binaries not found (install Debian's `postgresql` package,"
        " or set POSTSYNC_PG_BINDIR to the directory holding initdb and pg_ctl)"
    )


def free_port() -> int:
    """A free TCP port on loopback (for the servers the tests start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server; `create_database` hands each test its own database."""

    bindir: Path
    root: Path
    port: int = field(default_factory=free_port)
    user: str = "postgres"
    password: str = "s3cret-pg-pass"
    #: commits reach the WAL before they return (a server crashed by a test must keep
    #: what was committed before; the fast default may lose the last commits)
    durable: bool = False
    #: how clients authenticate: trust (any password) or scram-sha-256 (`password` only)
    auth: str = "trust"
    _run_as: list[str] = field(default_factory=list)
    _started: bool = False

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def sockdir(self) -> Path:
        return self.root / "sock"

    def url(self, database: str = "postgres", *, password: bool = False) -> str:
        auth = f"{self.user}:{self.password}" if password else self.user
        return f"postgresql+psycopg://{auth}@127.0.0.1:{self.port}/{database}"

    def _command(self, *args: str) -> list[str]:
        return [*self._run_as, *args]

    def _run(self, *args: str) -> None:
        done = subprocess.run(self._command(*args), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ServerUnavailable(
                f"{' '.join(args[:1])} failed (exit {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-2000:]}"
            )

    def start(self) -> None:
        self.sockdir.mkdir()
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise ServerUnavailable(
                    "running as root but there is no `postgres` user to run the server as"
                ) from exc
            os.chown(self.root, account.pw_uid, account.pw_gid)
            os.chown(self.sockdir, account.pw_uid, account.pw_gid)
            self._run_as = ["runuser", "-u", "postgres", "--"]
        self._initdb()
        self.resume()
        atexit.register(self.stop)

    def _initdb(self) -> None:
        checked: list[str] = []
        if self.auth != "trust":
            # the superuser's password, read by initdb from a file (not a command line)
            pwfile = self.root / "pwfile"
            pwfile.write_text(self.password + "\n")
            if self._run_as:
                account = pwd.getpwnam("postgres")
                os.chown(pwfile, account.pw_uid, account.pw_gid)
            checked = [f"--pwfile={pwfile}"]
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-A",
            self.auth,
            *checked,
            "-U",
            self.user,
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )

    def resume(self) -> None:
        """Start the server on its existing data directory."""
        commit = "on" if self.durable else "off"
        options = (
            f"-p {self.port} -h 127.0.0.1 -k {self.sockdir} -F"
            f" -c fsync=off -c synchronous_commit={commit} -c full_page_writes=off"
            " -c max_connections=50"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        self._started = True

    def crash(self) -> None:
        """Stop the server at once, as a crash would (`pg_ctl stop -m immediate`)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop")
        self._started = False

    def stop(self) -> None:
        if self._started:
            self._started = False
            subprocess.run(
                self._command(
                    str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop"
                ),
                capture_output=True,
                check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def sql(self, *statements: str) -> None:
        """Run statements in autocommit on the server's `postgres` database (what
        cannot run in a transaction: creating and dropping databases)."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            password=self.password,
            dbname="postgres",
            autocommit=True,
        ) as conn:
            for statement in statements:
                conn.execute(statement.encode())

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create a database, empty or a copy of `template`; return its SQLAlchemy URL."""
        copy = f' TEMPLATE "{template}"' if template else ""
        self.sql(f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop the database a URL of `url` names."""
        self.sql(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}"')


class TestServer(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


S = TypeVar("S", bound=TestServer)


def started(server: S) -> S:
    """`server` started; if it cannot start, its directory is removed and the error
    (ServerUnavailable) raised."""
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


def start_server(*, durable: bool = False, auth: str = "trust") -> PostgresServer:
    """Start a server in a new temporary directory (raises ServerUnavailable); `auth`
    scram-sha-256 makes it check passwords (the default, trust, takes any)."""
    bindir = find_bindir()
    root = Path(tempfile.mkdtemp(prefix="postsync-pg-"))
    return started(PostgresServer(bindir, root, durable=durable, auth=auth))
