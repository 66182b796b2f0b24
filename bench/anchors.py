"""The anchors: postsync against what an administrator would use instead, on a real
Moodle site of the lab (tests/moodle/README.md), each tool on its own twin clone of the
same seeded site, from the same state, with the same rows to make.

    POSTSYNC_MOODLE_GIT=/path/to/hrsq1.git POSTSYNC_MOODLE_REF=4.5 \\
    POSTSYNC_TOOLSYNC_GIT=/path/to/moodle-tool_sync.git \\
        python bench/anchors.py --scale 1 --output bench/anchors.md

Workloads (at --scale 1; the issue's side-by-side table):

- 10,000 new users, half of them with a password: postsync's users feed; Moodle's
  admin/tool/uploaduser CLI (add new only, the others' passwords made by cron, as
  --uupasswordnew=1 does); tool_sync's users sync (its scheduled task's cron());
- the same 10,000 users, 10% of them with a new last name: the same tools again
  (uploaduser: add new and update existing, override with the file);
- 50,000 enrolments added (5,000 users in 10 courses, student): postsync's enrolments
  feed; tool_sync's enrolment sync; enrol_flatfile's scheduled task;
- 5,000 of them unenrolled (`del` lines): the same three.

And Moodle's own enrol_user while postsync applies the 50,000 enrolments (--latency):
a PHP process enrolling, again and again, users the file enrols in the same course,
each call timed: its worst and median latency with the file in one transaction, and
with `commit_every: {seconds: 1}`.

Each tool runs once a workload (the anchors take minutes); every timing is a wall
time of the command an administrator would run, PHP's start included. Every site is
checked to hold the rows the workload makes, so a tool that skipped its file times
nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import POSTSYNC, ROOT, check_applied
from tests.moodle.lab import DB_USER, Lab, Site, lab_root, source

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
        server = self.lab.server
        server.sql(f"DROP DATABASE IF EXISTS {name}")
        server.sql(f"CREATE DATABASE {name} TEMPLATE {self.seed.name} OWNER {DB_USER}")
        root = self.lab.root
        shutil.rmtree(root / f"data_{name}", ignore_errors=True)
        shutil.copytree(root / f"data_{self.seed.name}", root / f"data_{name}", symlinks=True)
        self.lab._own(root / f"data_{name}")
        print(f"  {tool}: site {name}", flush=True)
        return Site(self.lab, name)


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


def bench_users(twins: Twins, work: Path, n: int) -> dict[str, list[float]]:
    lab = twins.lab
    out: dict[str, list[float]] = {}
    new, changed = users_file(1, n, ";"), users_file(1, n, ";", 0.1)
    made = []
    site = twins.clone("postsync")
    made.append(site)
    out["postsync"] = [
        postsync(site, work, "users.csv", new, USERS_STEP),
        postsync(site, work, "users.csv", changed, USERS_STEP),
    ]
    site = twins.clone("uploaduser")
    made.append(site)
    tool = "admin/tool/uploaduser/cli/uploaduser.php"
    fields = textareas(site)
    first = hand_over(lab, "users-new.csv", users_file(1, n, ",", 0, fields))
    again = hand_over(lab, "users-changed.csv", users_file(1, n, ",", 0.1, fields))
    out["uploaduser"] = [
        php(site, tool, f"--file={first}", "--uutype=0", "--uupasswordnew=1"),
        php(site, tool, f"--file={again}", "--uutype=2", "--uuupdatetype=1"),
    ]
    site = twins.clone("tool_sync")
    made.append(site)
    sync = str(lab.scripts / "toolsync.php")  # the lab's own (tests/moodle/php)
    out["tool_sync"] = [
        php(site, sync, "users", hand_over(lab, "userimport-new.csv", new)),
        php(site, sync, "users", hand_over(lab, "userimport-changed.csv", changed)),
    ]
    for tool_name in out:
        print(f"  users {tool_name}: {out[tool_name]}", flush=True)
    for site in made:
        assert count(site, NEW_USERS) == n, f"{site.name}: not every user made"
        assert count(site, RENAMED) == int(n * 0.1), f"{site.name}: not every user renamed"
    return out


def bench_enrolments(twins: Twins, work: Path, users: int) -> dict[str, list[float]]:
    lab = twins.lab
    head = HEAD
    add = "\n".join([head, *enrol_lines(users, "add", ";")]) + "\n"
    gone = max(1, users // 10)
    delete = "\n".join([head, *enrol_lines(gone, "del", ";")]) + "\n"
    want = users * COURSES
    out: dict[str, list[float]] = {}
    site = twins.clone("postsync")
    step = ENROL_STEP.format(extra="")
    out["postsync"] = [postsync(site, work, "enrols.csv", add, step)]
    assert count(site, ENROLMENTS) == want, "postsync: not every enrolment made"
    out["postsync"].append(postsync(site, work, "enrols.csv", delete, step))
    assert count(site, ENROLMENTS) == want - gone * COURSES
    site = twins.clone("tool_sync")
    sync = str(lab.scripts / "toolsync.php")
    out["tool_sync"] = [php(site, sync, "enrols", hand_over(lab, "enrols-add.csv", add))]
    assert count(site, ENROLMENTS) == want, "tool_sync: not every enrolment made"
    out["tool_sync"].append(php(site, sync, "enrols", hand_over(lab, "enrols-del.csv", delete)))
    assert count(site, ENROLMENTS) == want - gone * COURSES
    site = twins.clone("enrol_flatfile")
    task = ["admin/cli/scheduled_task.php", "--execute=\\enrol_flatfile\\task\\flatfile_sync_task"]
    flat: list[float] = []
    for name, lines in (
        ("flatfile-add.txt", enrol_lines(users, "add", ",", True)),
        ("flatfile-del.txt", enrol_lines(gone, "del", ",", True)),
    ):
        location = hand_over(lab, name, "\n".join(lines) + "\n")
        php(site, script(lab, "flatfile.php"), location)
        flat.append(php(site, *task))
        if Path(location).exists():
            raise SystemExit(f"enrol_flatfile did not read {location}")
    out["enrol_flatfile"] = flat
    assert count(site, ENROLMENTS) == want - gone * COURSES
    for tool_name in out:
        print(f"  enrolments {tool_name}: {out[tool_name]}", flush=True)
    return out


def first_write(site: Site, deadline: float) -> None:
    """Until a transaction other than this one holds a transaction id on the site's
    database (it wrote a row: postsync's first batch)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(site.url, isolation_level="AUTOCOMMIT")
    sql = text(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
    )
    try:
        with engine.connect() as conn:
            while not conn.execute(sql).scalar_one():
                if time.monotonic() > deadline:
                    raise SystemExit(f"{site.name}: no write seen")
                time.sleep(0.01)
    finally:
        engine.dispose()


def latency(twins: Twins, work: Path, users: int, extra: str) -> dict[str, float]:
    """Moodle's enrol_user latency while postsync applies the enrolments: from
    postsync's first write on, a PHP process enrols, again and again, the users of the
    file's first lines in the course they name (rows postsync has just written)."""
    lab = twins.lab
    site = twins.clone(f"latency{extra and ' (chunks)'}")
    add = "\n".join([HEAD, *enrol_lines(users, "add", ";")]) + "\n"
    root = work / site.name
    (root / "area").mkdir(parents=True, exist_ok=True)
    (root / "area" / "enrols.csv").write_text(add)
    playbook = root / "playbook.yml"
    step = ENROL_STEP.format(extra=extra)
    playbook.write_text(f'name: anchors\narea: area\ndatabase: "{site.url}"\nsync:\n{step}')
    stop = lab.inbox / f"stop-{site.name}"
    stop.unlink(missing_ok=True)
    people = [f"U{u:05d}" for u in range(1, 41)]  # lines 2 to 401: C001 is each one's first
    env = {**os.environ, "LAB_DB": site.name, "MOODLE_LAB": str(lab.root)}
    command = ["php", script(lab, "enrol_loop.php"), "C001", str(stop), *people]
    if os.geteuid() == 0:
        env["HOME"] = lab.user.pw_dir
        command = ["runuser", "-u", lab.user.pw_name, "--", *command]
    start = time.perf_counter()
    run = subprocess.Popen(
        [*POSTSYNC, "run", str(playbook)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    with tempfile.TemporaryFile("w+") as out:
        first_write(site, time.monotonic() + 120)
        loop = subprocess.Popen(command, cwd=lab.moodle, env=env, stdout=out, text=True)
        _out, err = run.communicate(timeout=1800)
        seconds = time.perf_counter() - start
        if run.returncode not in (0, 2):
            raise SystemExit(f"postsync failed ({run.returncode}): {err[-3000:]}")
        time.sleep(1.0)
        stop.touch()
        loop.wait(timeout=600)
        out.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith("{")]
    check_applied(root / "area", users * COURSES)
    found = json.loads(lines[-1])
    times = sorted(found["latencies"])
    return {
        "run": seconds,
        "calls": len(times),
        "errors": found["errors"],
        "median": statistics.median(times),
        "worst": times[-1],
        "over_1s": sum(1 for t in times if t > 1.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--only", choices=["users", "enrolments", "latency"], action="append")
    args = parser.parse_args()
    only = set(args.only or ["users", "enrolments", "latency"])
    n_users = max(20, int(10_000 * args.scale))
    n_enrol = max(2, int(5_000 * args.scale))
    lab = Lab(lab_root(), source()).ensure()
    work = Path(tempfile.mkdtemp(prefix="postsync-anchors-"))
    print(f"lab {lab.release}; {n_users:,} users, {n_enrol * COURSES:,} enrolments", flush=True)
    twins = Twins(lab, seed(lab, work, n_enrol))
    results: dict[str, object] = {"release": lab.release, "facts": lab.facts()}
    try:
        if "users" in only:
            results["users"] = bench_users(twins, work, n_users)
        if "enrolments" in only:
            results["enrolments"] = bench_enrolments(twins, work, n_enrol)
        if "latency" in only:
            results["latency"] = {
                "one transaction": latency(twins, work, n_enrol, ""),
                "commit_every 1 s": latency(
                    twins, work, n_enrol, "    commit_every: {seconds: 1}\n"
                ),
            }
    finally:
        for name in [*twins.names, twins.seed.name]:
            lab.server.sql(f"DROP DATABASE IF EXISTS {name}")
            shutil.rmtree(lab.root / f"data_{name}", ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    text = report(results, n_users, n_enrol * COURSES, args.scale)
    print(text)
    if args.output is not None:
        with args.output.open("a") as out:
            out.write(text)


def report(results: dict[str, object], users: int, enrolments: int, scale: float) -> str:
    """The side-by-side table, each anchor's time and its ratio to postsync's."""
    day = time.strftime("%Y-%m-%d")
    lines = [f"\n## Anchors on the lab, {day} (bench/anchors.py --scale {scale:g})\n"]
    lines.append(f"{results['release']}; " + "; ".join(results["facts"]) + "\n")  # type: ignore[operator]
    tools = ["postsync", "uploaduser", "tool_sync", "enrol_flatfile"]
    lines.append("| workload | " + " | ".join(tools) + " |")
    lines.append("|---" * (len(tools) + 1) + "|")
    rows = [
        (f"{users:,} new users, half with a password", "users", 0),
        (f"the same {users:,} users, 10% changed", "users", 1),
        (f"{enrolments:,} enrolments added", "enrolments", 0),
        (f"{enrolments // 10:,} of them unenrolled", "enrolments", 1),
    ]
    for title, kind, index in rows:
        found = results.get(kind)
        if not isinstance(found, dict):
            continue
        ours = found["postsync"][index]
        cells = []
        for tool in tools:
            if tool not in found:
                cells.append("-")
            elif tool == "postsync":
                cells.append(f"{ours:.1f} s")
            else:
                theirs = found[tool][index]
                cells.append(f"{theirs:.1f} s ({theirs / ours:.1f}x postsync)")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    waits = results.get("latency")
    if isinstance(waits, dict):
        lines.append(
            f"\nMoodle's enrol_user (manual plugin, users the file enrols in the same course,"
            f" one call after another) while postsync adds the {enrolments:,} enrolments:\n"
        )
        lines.append("| postsync | its run | calls | median | worst | calls over 1 s |")
        lines.append("|---|---|---|---|---|---|")
        for name, w in waits.items():
            lines.append(
                f"| {name} | {w['run']:.1f} s | {w['calls']} | {w['median'] * 1000:.0f} ms |"
                f" {w['worst']:.2f} s | {w['over_1s']} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
