"""A real Moodle 4.2 site for the tests, built from a Moodle source the user gives.

POSTSYNC_MOODLE_GIT names a git directory holding the Moodle 4.2 release commit (e.g.
what `fetch github:Izizizzz/arsikom-moodle` brings), or POSTSYNC_MOODLE_SRC an exported
Moodle tree. The lab lives in POSTSYNC_MOODLE_LAB (default: $TMPDIR/postsync-moodle-lab)
and is kept between runs: PHP from Debian (installed with apt when absent, as root), a
PostgreSQL server of its own on a free loopback port, Moodle installed with its own CLI,
seeded through Moodle's API (php/seed.php), snapshotted as a template database. Each
test clones the seeded site (a database and a dataroot of its own) in a second.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.pgserver import find_bindir, free_port

HERE = Path(__file__).resolve().parent
PHP_DIR = HERE / "php"
RELEASE_COMMIT = "ae4efa96ee8169a848c141ad21690165ea791552"  # "Moodle release 4.2"
TOOLSYNC_BRANCH = "MOODLE_401_WORKING"
DB_USER, DB_PASSWORD = "moodle", "moodlepass"
PHP_PACKAGES = ["php-cli", "php-pgsql", "php-xml", "php-mbstring", "php-intl", "php-zip"]
PHP_PACKAGES += ["php-gd", "php-curl", "php-soap"]


#: Moodle 4.2 asks for max_input_vars >= 5000 even on the CLI; 4.2.0 on PHP 8.2 prints
#: deprecations before its own debugging settings apply (E_ALL & ~E_DEPRECATED)
PHP_OPTIONS = ("-d", "max_input_vars=5000", "-d", "error_reporting=22527")


class LabUnavailable(Exception):
    """No Moodle source was given (the reason is the message)."""


def source() -> tuple[str, Path]:
    """('git', git dir) or ('tree', exported tree), from the environment."""
    if os.environ.get("POSTSYNC_MOODLE_SRC"):
        return "tree", Path(os.environ["POSTSYNC_MOODLE_SRC"])
    if os.environ.get("POSTSYNC_MOODLE_GIT"):
        return "git", Path(os.environ["POSTSYNC_MOODLE_GIT"])
    raise LabUnavailable(
        "no Moodle source: set POSTSYNC_MOODLE_GIT to a git dir holding the Moodle 4.2"
        " release (fetch github:Izizizzz/arsikom-moodle) or POSTSYNC_MOODLE_SRC to an"
        " exported Moodle tree (tests/moodle/README.md)"
    )


def _run(command: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, check=False, **options)
    if done.returncode != 0:
        said = "\n".join(
            line
            for line in (done.stdout + done.stderr).splitlines()
            if "Deprecated:" not in line  # Moodle 4.2.0 on PHP 8.2 (see php_command)
        )
        raise RuntimeError(f"{' '.join(command)} failed:\n{said[-3000:]}")
    return done


@dataclass
class Site:
    """One clone of the seeded site: its database and dataroot."""

    lab: Lab
    name: str

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{self.lab.port}/{self.name}"

    def php(self, script: str, *args: str) -> Any:
        """Run php/SCRIPT against this site through Moodle's API; its JSON output."""
        return self.lab.php(script, *args, site=self.name)


class Lab:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.moodle = root / "moodle"
        self.port = 0

    # -- building ------------------------------------------------------------------------

    def ensure(self) -> Lab:
        kind, where = source()
        self.root.mkdir(parents=True, exist_ok=True)
        self._php_installed()
        if not (self.moodle / "version.php").is_file():
            self._export(kind, where)
        self._postgres()
        if not (self.moodle / "config.php").is_file():
            self._install()
        if self._toolsync() and self._has_database("moodle_seed"):
            self._sql("DROP DATABASE moodle_seed")  # snapshot again, with the plugin
        if not self._has_database("moodle_seed"):
            self.php("seed.php", site="moodle")
            self.php("purge_caches.php", site="moodle")
            self._sql("CREATE DATABASE moodle_seed TEMPLATE moodle OWNER moodle")
            shutil.rmtree(self.root / "data_seed", ignore_errors=True)
            shutil.copytree(self.root / "data", self.root / "data_seed", symlinks=True)
        return self

    def has_toolsync(self) -> bool:
        return (self.moodle / "admin" / "tool" / "sync" / "version.php").is_file()

    def _toolsync(self) -> bool:
        """tool_sync installed from POSTSYNC_TOOLSYNC_GIT (its git dir), if given and
        not there yet; whether it was installed now."""
        where = os.environ.get("POSTSYNC_TOOLSYNC_GIT")
        if not where or self.has_toolsync():
            return False
        target = self.moodle / "admin" / "tool" / "sync"
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.Popen(
            ["git", f"--git-dir={where}", "archive", TOOLSYNC_BRANCH], stdout=subprocess.PIPE
        )
        _run(["tar", "-x", "-C", str(target)], stdin=archive.stdout)
        if archive.wait() != 0:
            raise RuntimeError(f"git archive {TOOLSYNC_BRANCH} failed in {where}")
        self.php_command("admin/cli/upgrade.php", "--non-interactive")
        return True

    def _php_installed(self) -> None:
        if shutil.which("php") is not None:
            probe = subprocess.run(["php", "-m"], capture_output=True, text=True, check=False)
            if probe.returncode == 0 and {"pgsql", "intl", "xml"} <= set(probe.stdout.split()):
                return
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        _run(["apt-get", "update", "-q"], env=env)
        _run(["apt-get", "install", "-y", "-q", *PHP_PACKAGES], env=env)

    def _export(self, kind: str, where: Path) -> None:
        shutil.rmtree(self.moodle, ignore_errors=True)
        if kind == "tree":
            shutil.copytree(where, self.moodle, symlinks=True)
            return
        self.moodle.mkdir(parents=True)
        archive = subprocess.Popen(
            ["git", f"--git-dir={where}", "archive", RELEASE_COMMIT], stdout=subprocess.PIPE
        )
        _run(["tar", "-x", "-C", str(self.moodle)], stdin=archive.stdout)
        if archive.wait() != 0:
            raise RuntimeError(f"git archive {RELEASE_COMMIT} failed in {where}")

    def _as_postgres(self, *command: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else [*command]

    def _postgres(self) -> None:
        bindir = find_bindir()
        data, sock = self.root / "pg", self.root / "pgsock"
        port_file = self.root / "pg.port"
        if not (data / "PG_VERSION").is_file():
            data.mkdir(mode=0o700, exist_ok=True)
            sock.mkdir(exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(data, "postgres", "postgres")
                shutil.chown(sock, "postgres", "postgres")
            _run(
                self._as_postgres(
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                )
            )
        running = subprocess.run(
            self._as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "status"),
            capture_output=True,
            check=False,
        )
        if running.returncode == 0 and port_file.is_file():
            self.port = int(port_file.read_text())
        else:
            self.port = free_port()
            options = f"-h 127.0.0.1 -p {self.port} -k {sock} -F -c full_page_writes=off"
            _run(
                self._as_postgres(
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(sock / "pg.log"),
                    "-o",
                    options,
                    "-w",
                    "start",
                )
            )
            port_file.write_text(str(self.port))
        if not self._sql("SELECT 1 FROM pg_roles WHERE rolname = 'moodle'").strip():
            self._sql(f"CREATE ROLE moodle LOGIN PASSWORD '{DB_PASSWORD}' CREATEDB")
        if not self._has_database("moodle"):
            self._sql("CREATE DATABASE moodle OWNER moodle ENCODING 'UTF8' TEMPLATE template0")
        self._fix_config_port()

    def _sql(self, statement: str) -> str:
        bindir = find_bindir()
        return _run(
            self._as_postgres(
                str(bindir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-qtAc",
                statement,
            )
        ).stdout

    def _has_database(self, name: str) -> bool:
        return bool(self._sql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'").strip())

    def _install(self) -> None:
        (self.root / "data").mkdir(exist_ok=True)
        self.php_command(
            "admin/cli/install.php",
            "--non-interactive",
            "--agree-license",
            "--lang=en",
            "--dbtype=pgsql",
            "--dbhost=127.0.0.1",
            f"--dbport={self.port}",
            "--dbname=moodle",
            f"--dbuser={DB_USER}",
            f"--dbpass={DB_PASSWORD}",
            "--prefix=mdl_",
            "--wwwroot=http://localhost",
            f"--dataroot={self.root / 'data'}",
            "--fullname=Lab",
            "--shortname=lab",
            "--adminpass=Admin1234!",
            "--adminemail=admin@example.com",
            "--supportemail=admin@example.com",
        )
        config = self.moodle / "config.php"
        text = config.read_text()
        # one code tree, a site per test: LAB_DB picks the database and its own dataroot
        text = re.sub(
            r"^\$CFG->dbname\s*=.*$",
            "$CFG->dbname    = getenv('LAB_DB') ?: 'moodle';",
            text,
            flags=re.M,
        )
        text = re.sub(
            r"^\$CFG->dataroot\s*=.*$",
            f"$CFG->dataroot  = '{self.root / 'data'}' . ((getenv('LAB_DB') ?: 'moodle')"
            " === 'moodle' ? '' : '_' . getenv('LAB_DB'));",
            text,
            flags=re.M,
        )
        config.write_text(text)

    def _fix_config_port(self) -> None:
        config = self.moodle / "config.php"
        if config.is_file():  # the server's port changes when the lab is started again
            text = re.sub(r"'dbport' => \d+", f"'dbport' => {self.port}", config.read_text())
            config.write_text(text)

    # -- using ---------------------------------------------------------------------------

    def php_command(self, *args: str, site: str = "moodle") -> str:
        env = {**os.environ, "LAB_DB": site, "MOODLE_LAB": str(self.root)}
        command = ["php", *PHP_OPTIONS, *args]
        return _run(command, cwd=self.moodle, env=env).stdout

    def php(self, script: str, *args: str, site: str = "moodle") -> Any:
        out = self.php_command(str(PHP_DIR / script), *args, site=site)
        lines = [line for line in out.splitlines() if line.startswith(("{", "["))]
        return json.loads(lines[-1]) if lines else None

    def clone(self, name: str) -> Site:
        self._sql(f"DROP DATABASE IF EXISTS {name}")
        self._sql(f"CREATE DATABASE {name} TEMPLATE moodle_seed OWNER moodle")
        data = self.root / f"data_{name}"
        shutil.rmtree(data, ignore_errors=True)
        shutil.copytree(self.root / "data_seed", data, symlinks=True)
        return Site(self, name)

    def release(self) -> str:
        match = re.search(r"\$release\s*=\s*'([^']+)'", (self.moodle / "version.php").read_text())
        return match.group(1) if match else "unknown"


def lab_root() -> Path:
    return Path(
        os.environ.get("POSTSYNC_MOODLE_LAB") or Path(tempfile.gettempdir()) / "postsync-moodle-lab"
    )
