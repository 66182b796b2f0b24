"""A real Moodle site for the tests, of the release the user gives: 4.2, 4.5, 5.0, 5.1.

Where the Moodle code comes from (tests/moodle/README.md):
  POSTSYNC_MOODLE_SRC   an exported Moodle tree, used as it is; or
  POSTSYNC_MOODLE_GIT   a git directory, with POSTSYNC_MOODLE_REF naming a release the
                        lab knows (RELEASES: its commit, and the paths its public upload
                        adds to the release, left out) or a commit; without
                        POSTSYNC_MOODLE_REF, the known release the git directory holds.
Each release gets a lab of its own, POSTSYNC_MOODLE_LAB/<release> (default:
$TMPDIR/postsync-moodle-lab/4.5.6...), kept between runs: PHP from Debian (installed
with apt when absent, as root), a PostgreSQL server of its own on a free loopback port,
Moodle installed with its own CLI, seeded through Moodle's API (php/seed.php),
snapshotted as a template database. Each test clones the seeded site (a database and a
dataroot of its own) in a second.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.moodle.server import Postgres

HERE = Path(__file__).resolve().parent
PHP_DIR = HERE / "php"
TOOLSYNC_BRANCH = "MOODLE_401_WORKING"
DB_USER, DB_PASSWORD = "moodle", "moodlepass"
PHP_PACKAGES = ["php-cli", "php-pgsql", "php-xml", "php-mbstring", "php-intl", "php-zip"]
PHP_PACKAGES += ["php-gd", "php-curl", "php-soap"]
#: who runs Moodle's PHP when the tests run as root (as a site's web server would)
SITE_USER = "www-data"

#: Moodle asks for max_input_vars >= 5000 even on the CLI; 4.2.0 on PHP 8.2 prints
#: deprecations before its own debugging settings apply (E_ALL & ~E_DEPRECATED)
PHP_OPTIONS = ("-d", "max_input_vars=5000", "-d", "error_reporting=22527")


@dataclass(frozen=True)
class Release:
    """A Moodle release the lab knows: the commit of a public upload of its tree, and
    what that upload adds to the release (a site's own plugins, its config.php)."""

    upload: str
    commit: str
    extra: tuple[str, ...] = ()


RELEASES = {
    "4.2": Release("Izizizzz/arsikom-moodle", "ae4efa96ee8169a848c141ad21690165ea791552"),
    "4.5": Release(
        "paulkennethsq1/hrsq1",
        "b6e90f4291b8a456c305efc5347d72a803fc9389",
        (
            *("config.php", "local/assessment", "local/assessmentreport", "local/corechanges"),
            "theme/moove",
        ),
    ),
    "5.0": Release(
        "mrmelhay/Moodle-5.0",
        "ce47417ad2c954f979c8b684165037bb27d28be0",
        ("local/admingrades", "local/examreport", ".docs"),
    ),
    "5.1": Release(
        "rafiathallah3/Moodle-Local",
        "b29264d1c77026c04969d61e33206619d0a16455",
        (
            *("config.php", "public/course/format/remuiformat", "theme", "execution"),
            *("admin/cli/create_quiz.php", "admin/cli/import_question_bank.php"),
            *(".vscode", "composer-setup.php"),
        ),
    ),
}


#: the name of a clone of the seeded site (`Lab.clone`)
CLONE = "^t[0-9]+_[0-9]+$"


class LabUnavailable(Exception):
    """No Moodle source was given (the reason is the message)."""


def _run(command: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, check=False, **options)
    if done.returncode != 0:
        said = "\n".join(
            line
            for line in (done.stdout + done.stderr).splitlines()
            if "Deprecated:" not in line  # Moodle 4.2.0 on PHP 8.2 (see PHP_OPTIONS)
        )
        raise RuntimeError(f"{' '.join(command)} failed:\n{said[-3000:]}")
    return done


def _git(gitdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", f"--git-dir={gitdir}", *args], capture_output=True, text=True, check=False
    )


@dataclass(frozen=True)
class Source:
    """Where the lab's Moodle code comes from: an exported tree, or a commit of a git
    directory (with the paths to leave out)."""

    tree: Path | None = None
    gitdir: Path | None = None
    commit: str = ""
    extra: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.tree is not None:
            return f"tree {self.tree}"
        left = f", without {' '.join(sorted(self.extra))}" if self.extra else ""
        return f"commit {self.commit} of {self.gitdir}{left}"

    def label(self) -> str:
        """For the results: the source without this machine's paths."""
        if self.tree is not None:
            return "an exported tree"
        for name, known in RELEASES.items():
            if known.commit == self.commit and known.extra == self.extra:
                left = f", without {', '.join(self.extra)}" if self.extra else ""
                return f"{name}: commit {self.commit[:12]} of {known.upload}{left}"
        return f"commit {self.commit}"

    def release(self) -> str:
        """Moodle's $release, from the source's version.php (public/ from 5.1)."""
        for name in ("version.php", "public/version.php"):
            if self.tree is not None:
                path = self.tree / name
                text = path.read_text() if path.is_file() else ""
            else:
                assert self.gitdir is not None
                text = _git(self.gitdir, "show", f"{self.commit}:{name}").stdout
            match = re.search(r"\$release\s*=\s*'([^']+)'", text)
            if match:
                return match.group(1)
        raise RuntimeError(f"no Moodle version.php in {self.describe()}")

    def export(self, dest: Path) -> None:
        """The tree into `dest`: copied, or the commit archived without its extra paths
        and without the files the git directory lacks (a snapshot may leave out its
        largest files: none of them is needed to install)."""
        if self.tree is not None:
            shutil.copytree(self.tree, dest, symlinks=True)
            return
        assert self.gitdir is not None
        listing = _git(
            self.gitdir,
            "ls-tree",
            "-r",
            "--format=%(objecttype) %(objectname) %(path)",
            self.commit,
        )
        if listing.returncode != 0:
            raise RuntimeError(f"no commit {self.commit} in {self.gitdir}: {listing.stderr}")
        blobs: dict[str, list[str]] = {}
        for line in listing.stdout.splitlines():
            kind, sha, path = line.split(" ", 2)
            if kind == "blob":
                blobs.setdefault(sha, []).append(path)
        check = subprocess.run(
            ["git", f"--git-dir={self.gitdir}", "cat-file", "--batch-check", "--buffer"],
            input="\n".join(blobs) + "\n",
            capture_output=True,
            text=True,
            check=True,
        )
        lacking = [
            path
            for line in check.stdout.splitlines()
            if line.endswith(" missing")
            for path in blobs[line.split()[0]]
        ]
        left_out = [f":(exclude,literal){path}" for path in [*self.extra, *lacking]]
        dest.mkdir(parents=True)
        archive = subprocess.Popen(
            ["git", f"--git-dir={self.gitdir}", "archive", self.commit, "--", ".", *left_out],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # git names the lacking files it was told to leave out
        )
        _run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout)
        if archive.wait() != 0:
            raise RuntimeError(f"git archive {self.commit} failed in {self.gitdir}")


def source() -> Source:
    """The Moodle source the environment names (LabUnavailable: none)."""
    if os.environ.get("POSTSYNC_MOODLE_SRC"):
        return Source(tree=Path(os.environ["POSTSYNC_MOODLE_SRC"]))
    if not os.environ.get("POSTSYNC_MOODLE_GIT"):
        raise LabUnavailable(
            "no Moodle source: set POSTSYNC_MOODLE_GIT to a git directory holding a Moodle"
            f" release ({', '.join(RELEASES)}: POSTSYNC_MOODLE_REF picks one) or"
            " POSTSYNC_MOODLE_SRC to an exported Moodle tree (tests/moodle/README.md)"
        )
    gitdir = Path(os.environ["POSTSYNC_MOODLE_GIT"])
    ref = os.environ.get("POSTSYNC_MOODLE_REF", "")
    if ref in RELEASES:
        known = RELEASES[ref]
        return Source(gitdir=gitdir, commit=known.commit, extra=known.extra)
    if ref:
        return Source(gitdir=gitdir, commit=ref)
    for known in RELEASES.values():
        if _git(gitdir, "cat-file", "-e", f"{known.commit}^{{commit}}").returncode == 0:
            return Source(gitdir=gitdir, commit=known.commit, extra=known.extra)
    raise RuntimeError(
        f"{gitdir} holds none of the releases the lab knows ({', '.join(RELEASES)}):"
        " set POSTSYNC_MOODLE_REF to the commit to use"
    )


def site_user() -> pwd.struct_passwd:
    """Who runs Moodle's PHP: the tests' own user, or the web server's when they run
    as root (Moodle's scripts are never run as root, postsync's purge step refuses to)."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    return pwd.getpwnam(SITE_USER)


@dataclass
class Site:
    """One clone of the seeded site: its database and dataroot."""

    lab: Lab
    name: str

    @property
    def url(self) -> str:
        return self.lab.server.url(DB_USER, DB_PASSWORD, self.name)

    def php(self, script: str, *args: str) -> Any:
        """Run php/SCRIPT against this site through Moodle's API; its JSON output."""
        return self.lab.php(script, *args, site=self.name)


class Lab:
    """One release's lab: POSTSYNC_MOODLE_LAB/<release>."""

    def __init__(self, base: Path, where: Source) -> None:
        self.source = where
        self.release = where.release()
        self.root = base / self.release.split()[0]
        #: the code tree: config.php and admin/cli are here
        self.moodle = self.root / "moodle"
        self.server = Postgres(self.root)
        self.user = site_user()

    @property
    def webroot(self) -> Path:
        """Moodle's dirroot: version.php and the plugins (public/ from 5.1)."""
        public = self.moodle / "public"
        return public if (public / "version.php").is_file() else self.moodle

    @property
    def version(self) -> tuple[int, ...]:
        """The release as numbers: (4, 5, 6), (5, 0)."""
        return tuple(int(part) for part in re.findall(r"\d+", self.release.split()[0]))

    def facts(self) -> list[str]:
        """What the results say of this lab: the code, PHP, PostgreSQL, tool_sync."""
        php = _run(["php", "-r", "echo PHP_VERSION;"]).stdout.strip()
        server = self.server.sql("SHOW server_version").split()[0]
        plugin = f"tool_sync {TOOLSYNC_BRANCH}" if self.has_toolsync() else "no tool_sync"
        return [f"Moodle code: {self.source.label()}", f"PHP {php}, PostgreSQL {server}", plugin]

    # -- building ------------------------------------------------------------------------

    def ensure(self) -> Lab:
        self.root.mkdir(parents=True, exist_ok=True)
        built_from = self.root / "source.txt"
        if built_from.is_file() and built_from.read_text().strip() != self.source.describe():
            raise RuntimeError(
                f"{self.root} holds a lab built from {built_from.read_text().strip()}, not"
                f" from {self.source.describe()}: remove it, or set POSTSYNC_MOODLE_LAB"
            )
        self._php_installed()
        shutil.rmtree(self.scripts, ignore_errors=True)  # this checkout's, each session
        shutil.copytree(PHP_DIR, self.scripts)
        if not (self.webroot / "version.php").is_file():
            shutil.rmtree(self.moodle, ignore_errors=True)
            self.source.export(self.moodle)
            built_from.write_text(self.source.describe() + "\n")
        self.server.start()
        self.server.ensure_role(DB_USER, DB_PASSWORD)
        if not self.server.has_database("moodle"):
            self.server.sql(
                f"CREATE DATABASE moodle OWNER {DB_USER} ENCODING 'UTF8' TEMPLATE template0"
            )
        self._fix_config_port()
        self._drop_clones()
        if not (self.moodle / "config.php").is_file():
            self._install()
        if self._toolsync() and self.server.has_database("moodle_seed"):
            self.server.sql("DROP DATABASE moodle_seed")  # snapshot again, with the plugin
        if not self.server.has_database("moodle_seed"):
            self.php("seed.php", site="moodle")
            self.php("purge_caches.php", site="moodle")
            self.server.sql(f"CREATE DATABASE moodle_seed TEMPLATE moodle OWNER {DB_USER}")
            self._copy_data(self.root / "data", self.root / "data_seed")
        return self

    def _drop_clones(self) -> None:
        """The sites an earlier session cloned (`clone`), and the files it handed over."""
        names = self.server.sql(f"SELECT datname FROM pg_database WHERE datname ~ '{CLONE}'")
        for name in names.split():
            self.server.sql(f"DROP DATABASE {name}")
        for data in self.root.glob("data_t*"):
            if re.fullmatch(CLONE, data.name.removeprefix("data_")):
                shutil.rmtree(data)
        shutil.rmtree(self.root / "files", ignore_errors=True)

    def has_toolsync(self) -> bool:
        return (self.webroot / "admin" / "tool" / "sync" / "version.php").is_file()

    def _toolsync(self) -> bool:
        """tool_sync installed from POSTSYNC_TOOLSYNC_GIT (its git dir), if given and
        not there yet; whether it was installed now."""
        where = os.environ.get("POSTSYNC_TOOLSYNC_GIT")
        if not where or self.has_toolsync():
            return False
        target = self.webroot / "admin" / "tool" / "sync"
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

    def _own(self, path: Path) -> None:
        """`path` (and what it holds) the site user's, for Moodle's PHP to write."""
        if os.geteuid() == 0:
            _run(["chown", "-R", f"{self.user.pw_uid}:{self.user.pw_gid}", str(path)])

    def _copy_data(self, source: Path, dest: Path) -> None:
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(source, dest, symlinks=True)
        self._own(dest)

    def _install(self) -> None:
        (self.root / "data").mkdir(exist_ok=True)
        self._own(self.root / "data")
        # install.php writes config.php at the tree's top (also from 5.1, out of public/)
        self._own_top(self.moodle)
        self.php_command(
            "admin/cli/install.php",
            "--non-interactive",
            "--agree-license",
            "--lang=en",
            "--dbtype=pgsql",
            "--dbhost=127.0.0.1",
            f"--dbport={self.server.port}",
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

    def _own_top(self, path: Path) -> None:
        if os.geteuid() == 0:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def _fix_config_port(self) -> None:
        config = self.moodle / "config.php"
        if config.is_file():  # the server's port changes when the lab is started again
            port = self.server.port
            text = re.sub(r"'dbport' => \d+", f"'dbport' => {port}", config.read_text())
            config.write_text(text)

    # -- using ---------------------------------------------------------------------------

    def php_process(self, *args: str, site: str = "moodle") -> tuple[list[str], dict[str, str]]:
        """Moodle's PHP with ARGS as the site user: the command and its environment, to
        run from the tree's top (`self.moodle`), e.g. alongside another process."""
        env = {**os.environ, "LAB_DB": site, "MOODLE_LAB": str(self.root)}
        command = ["php", *PHP_OPTIONS, *args]
        if os.geteuid() == 0:
            env["HOME"] = self.user.pw_dir
            command = ["runuser", "-u", self.user.pw_name, "--", *command]
        return command, env

    def php_command(self, *args: str, site: str = "moodle") -> str:
        """Moodle's PHP with ARGS, from the tree's top, as the site user: its output."""
        command, env = self.php_process(*args, site=site)
        return _run(command, cwd=self.moodle, env=env).stdout

    def php(self, script: str, *args: str, site: str = "moodle") -> Any:
        out = self.php_command(str(self.scripts / script), *args, site=site)
        lines = [line for line in out.splitlines() if line.startswith(("{", "["))]
        return json.loads(lines[-1]) if lines else None

    @property
    def scripts(self) -> Path:
        """The check scripts, copied where the site user reads them."""
        return self.root / "php"

    def clone(self, name: str, seed: Site | None = None) -> Site:
        """A site `name`, a copy of `seed` (its database and dataroot), by default of
        the freshly installed site's."""
        template, data = (seed.name, f"data_{seed.name}") if seed else ("moodle_seed", "data_seed")
        self.server.sql(f"DROP DATABASE IF EXISTS {name}")
        self.server.sql(f"CREATE DATABASE {name} TEMPLATE {template} OWNER {DB_USER}")
        self._copy_data(self.root / data, self.root / f"data_{name}")
        return Site(self, name)

    @property
    def inbox(self) -> Path:
        """A directory the site user writes and reads, for files a check passes on."""
        inbox = self.root / "files"
        inbox.mkdir(exist_ok=True)
        self._own_top(inbox)
        return inbox

    def hand_over(self, path: Path) -> Path:
        """A copy of file `path` that the site user can read (for a check script)."""
        copy = self.inbox / f"{os.getpid()}-{path.parent.name}-{path.name}"
        shutil.copyfile(path, copy)
        copy.chmod(0o644)
        return copy


def lab_root() -> Path:
    return Path(
        os.environ.get("POSTSYNC_MOODLE_LAB") or Path(tempfile.gettempdir()) / "postsync-moodle-lab"
    )
