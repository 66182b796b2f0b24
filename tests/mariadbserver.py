"""A throwaway MariaDB server for the tests, started from the Debian binaries.

Like tests/pgserver.py: a temporary data directory, a free loopback port and a private
socket, no durability (the tests never need it), stopped when the session ends. It
starts without privilege checks (`--skip-grant-tables`), then turns them on with a
password-less root@127.0.0.1 holding every privilege, so the tests can make users with
less (a SELECT-only preview user); it listens on loopback only and lives as long as
the test session. As root (CI containers) it is told to run
as root, which mariadbd otherwise refuses.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.pgserver import free_port, started


class ServerUnavailable(Exception):
    """The MariaDB server binaries are missing or the server would not start."""


def _which(*names: str) -> str | None:
    for name in names:
        for where in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
            if where and Path(where).is_file():
                return where
    return None


def find_binaries() -> tuple[str, str]:
    """(install-db, server) commands: $POSTSYNC_MARIADB_BINDIR, the PATH, or Debian's."""
    bindir = os.environ.get("POSTSYNC_MARIADB_BINDIR")
    if bindir:
        install = Path(bindir) / "mariadb-install-db"
        server = Path(bindir) / "mariadbd"
        if install.is_file() and server.is_file():
            return str(install), str(server)
    install_db = _which("mariadb-install-db", "mysql_install_db")
    server_bin = _which("mariadbd", "mysqld")
    if not (install_db and server_bin):
        raise ServerUnavailable(
            "MariaDB server binaries not found (install Debian's `mariadb-server` package,"
            " or set POSTSYNC_MARIADB_BINDIR to the directory holding mariadbd and"
            " mariadb-install-db)"
        )
    return install_db, server_bin


@dataclass
class MariaDBServer:
    """A running server; `create_database` hands each test its own database."""

    install_db: str
    server_bin: str
    root: Path
    port: int = field(default_factory=free_port)
    _process: subprocess.Popen[bytes] | None = None

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}?charset=utf8mb4"

    def _user(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def start(self) -> None:
        done = subprocess.run(
            [
                self.install_db,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *self._user(),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise ServerUnavailable(f"mariadb-install-db failed: {done.stderr[-2000:]}")
        log = open(self.root / "server.log", "wb")  # noqa: SIM115 (the server's lifetime)
        self._process = subprocess.Popen(
            [
                self.server_bin,
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--socket={self.root / 'mysqld.sock'}",
                f"--pid-file={self.root / 'mysqld.pid'}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                "--skip-grant-tables",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--innodb-buffer-pool-size=256M",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
                *self._user(),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        atexit.register(self.stop)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ServerUnavailable(
                    "mariadbd exited: " + (self.root / "server.log").read_text()[-2000:]
                )
            try:
                conn = self._connect()
            except Exception:  # not accepting connections yet
                time.sleep(0.2)
                continue
            try:
                with conn.cursor() as cursor:  # type: ignore[attr-defined]
                    cursor.execute("FLUSH PRIVILEGES")  # privilege checks from now on
                    cursor.execute("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'")
                    cursor.execute(
                        "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION"
                    )
            finally:
                conn.close()  # type: ignore[attr-defined]
            return
        raise ServerUnavailable("mariadbd did not accept connections within 60 s")

    def _connect(self, database: str | None = None) -> object:
        import pymysql

        return pymysql.connect(
            host="127.0.0.1", port=self.port, user="root", database=database, autocommit=True
        )

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """Create an empty database; return its SQLAlchemy URL."""
        conn = self._connect()
        try:
            with conn.cursor() as cursor:  # type: ignore[attr-defined]
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
                cursor.execute(
                    f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
        finally:
            conn.close()  # type: ignore[attr-defined]
        return self.url(name)


def start_server() -> MariaDBServer:
    """Start a server in a new temporary directory (raises ServerUnavailable)."""
    install_db, server_bin = find_binaries()
    root = Path(tempfile.mkdtemp(prefix="postsync-mariadb-"))
    return started(MariaDBServer(install_db, server_bin, root))
