"""A lab's own PostgreSQL server: in the lab's directory, on a free loopback port, kept
running between test sessions (started again when it is not)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.pgserver import find_bindir, free_port


class Postgres:
    def __init__(self, root: Path) -> None:
        self.data = root / "pg"
        self.sock = root / "pgsock"
        self.port_file = root / "pg.port"
        self.port = 0

    def _as_postgres(self, *command: str) -> list[str]:
        """PostgreSQL refuses to run as root: its `postgres` user then."""
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else [*command]

    def _run(self, *command: str) -> str:
        done = subprocess.run(
            self._as_postgres(*command), capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            said = (done.stdout + done.stderr).strip()[-2000:]
            raise RuntimeError(f"{' '.join(command)} failed:\n{said}")
        return done.stdout

    def start(self) -> None:
        """The server running (created first if need be); its port known."""
        bindir = find_bindir()
        if not (self.data / "PG_VERSION").is_file():
            self.data.mkdir(mode=0o700, exist_ok=True)
            self.sock.mkdir(exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(self.data, "postgres", "postgres")
                shutil.chown(self.sock, "postgres", "postgres")
            self._run(
                *(str(bindir / "initdb"), "-D", str(self.data), "-A", "trust"),
                *("-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8"),
            )
        status = subprocess.run(
            self._as_postgres(str(bindir / "pg_ctl"), "-D", str(self.data), "status"),
            capture_output=True,
            check=False,
        )
        if status.returncode == 0 and self.port_file.is_file():
            self.port = int(self.port_file.read_text())
            return
        self.port = free_port()
        options = f"-h 127.0.0.1 -p {self.port} -k {self.sock} -F -c full_page_writes=off"
        self._run(
            *(str(bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.sock / "pg.log")),
            *("-o", options, "-w", "start"),
        )
        self.port_file.write_text(str(self.port))

    def sql(self, statement: str) -> str:
        """One statement as the server's superuser; its rows, unaligned."""
        psql = str(find_bindir() / "psql")
        return self._run(
            *(psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-qtAc"),
            statement,
        )

    def has_database(self, name: str) -> bool:
        return bool(self.sql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'").strip())

    def ensure_role(self, name: str, password: str) -> None:
        if not self.sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{name}'").strip():
            self.sql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}' CREATEDB")

    def url(self, user: str, password: str, database: str) -> str:
        return f"postgresql+psycopg://{user}:{password}@127.0.0.1:{self.port}/{database}"
