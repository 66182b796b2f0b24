"""What the lab benches share (bench/anchors.py, bench/lock_wait.py): twin clones of a
seeded Moodle site of the lab (tests/moodle/README.md), Moodle's PHP and postsync run on
them and timed, the files of their workloads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import POSTSYNC, ROOT, check_applied
from tests.moodle.lab import Lab, Site

COURSES = 10
PHP = Path(__file__).resolve().parent / "php"


@dataclass
class Twins:
    """Clones of one seeded site (its database and dataroot), one per tool."""

    lab: Lab
    seed: Site
    names: list[str] = field(default_factory=list)

    def clone(self, tool: str) -> Site:
        name = f"t{os.getpid()}_{len(self.names) + 1}"
        self.names.append(name)
        site = self.lab.clone(name, self.seed)
        print(f"  {tool}: site {name}", flush=True)
        return site


def php(site: Site, *args: str) -> float:
    """Moodle's PHP with ARGS on the site, as its web server's user: wall seconds."""
    start = time.perf_counter()
    site.lab.php_command(*args, site=site.name)
    return time.perf_counter() - start


def script(lab: Lab, name: str) -> str:
    """A PHP script of bench/php, where the site user reads it."""
    target = lab.scripts / name
    shutil.copyfile(PHP / name, target)
    target.chmod(0o644)
    return str(target)


def hand_over(lab: Lab, name: str, text: str) -> str:
    path = lab.inbox / name
    path.write_text(text)
    path.chmod(0o666)
    return str(path)


def postsync(site: Site, work: Path, name: str, text: str, steps: str) -> float:
    """postsync run of one file on the site: wall seconds (its start included)."""
    root = work / site.name
    area = root / "area"
    area.mkdir(parents=True, exist_ok=True)
    (area / name).write_text(text)
    playbook = root / "playbook.yml"
    playbook.write_text(f'name: anchors\narea: area\ndatabase: "{site.url}"\nsync:\n{steps}')
    start = time.perf_counter()
    result = subprocess.run(
        [*POSTSYNC, "run", str(playbook)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    if result.returncode not in (0, 2):
        raise SystemExit(f"postsync failed ({result.returncode}): {result.stdout[-3000:]}")
    check_applied(area, text.count("\n") - 1)
    return seconds


def count(site: Site, sql: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(site.url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()


def users_file(
    first: int, n: int, sep: str, changed: float = 0.0, fields: tuple[str, ...] = ()
) -> str:
    """n users A00001...: half with a password; `changed`: that share renamed; `fields`:
    custom profile fields given a value."""
    names = ["username", "idnumber", "firstname", "lastname", "email", "password"]
    lines = [sep.join([*names, *(f"profile_field_{f}" for f in fields)])]
    renamed = int(n * changed)
    for i in range(first, first + n):
        last = "Renamed" if i - first < renamed else "Anchor"
        password = f"Pw-{i:05d}-x!" if i % 2 else ""
        values = [f"a{i:05d}", f"A{i:05d}", "Ann", last, f"a{i:05d}@example.org", password]
        lines.append(sep.join([*values, *("none" for _ in fields)]))
    return "\n".join(lines) + "\n"


def textareas(site: Site) -> tuple[str, ...]:
    """The site's custom profile fields of type textarea: uploaduser's CLI inserts a
    null into a NOT NULL column for one a file leaves out (tool_sync adds one,
    userpicturehash), so its files give them a value."""
    from sqlalchemy import create_engine, text

    engine = create_engine(site.url)
    try:
        with engine.connect() as conn:
            sql = "SELECT shortname FROM mdl_user_info_field WHERE datatype = 'textarea'"
            return tuple(str(r[0]) for r in conn.execute(text(sql)))
    finally:
        engine.dispose()


def enrol_lines(users: int, cmd: str, sep: str, flatfile: bool = False) -> list[str]:
    lines = []
    for u in range(1, users + 1):
        for c in range(1, COURSES + 1):
            if flatfile:
                lines.append(f"{cmd},student,U{u:05d},C{c:03d}")
            else:
                lines.append(sep.join([cmd, f"C{c:03d}", f"U{u:05d}", "student", "manual"]))
    return lines


#: an enrolments file as tool_sync reads it (its `enrol` column: the plugin)
HEAD = "cmd;cid;uid;rolename;enrol"
USERS_STEP = "  - command: users\n    file: users.csv\n    settle_seconds: 0\n"
ENROL_STEP = "  - command: enrolments\n    file: enrols.csv\n    settle_seconds: 0\n{extra}"
NEW_USERS = "SELECT COUNT(*) FROM mdl_user WHERE idnumber LIKE 'A%' AND deleted = 0"
RENAMED = "SELECT COUNT(*) FROM mdl_user WHERE idnumber LIKE 'A%' AND lastname = 'Renamed'"
ENROLMENTS = (
    "SELECT COUNT(*) FROM mdl_user_enrolments ue JOIN mdl_user u ON u.id = ue.userid"
    " WHERE u.idnumber LIKE 'U%'"
)


def seed(lab: Lab, work: Path, users: int) -> Site:
    """The site every twin clones: the lab's seeded site, COURSES courses made through
    Moodle's API and `users` users (made by postsync: setup, not measured)."""
    site = lab.clone(f"t{os.getpid()}_0")
    php(site, script(lab, "courses.php"), str(COURSES))
    people = ["username;idnumber;firstname;lastname;email"]
    people += [f"u{u:05d};U{u:05d};Una;Seed;u{u:05d}@example.org" for u in range(1, users + 1)]
    postsync(site, work, "users.csv", "\n".join(people) + "\n", USERS_STEP)
    php(site, "admin/cli/purge_caches.php")
    return site
