"""Removals against additions of the same rows, on SQLite, PostgreSQL and MariaDB.

    python bench/removals.py                      # 5,000 rows of each, 3 rounds
    python bench/removals.py --lines 20000 --databases postgresql

A site (20,000 users, 500 courses, each course with 4 activity contexts below it) on
each database. Each round, on the same database (each removal undoes its addition, so
every round starts from the same state), timed whole (`postsync run`, its start
included):

- enrolments: --lines `add` lines (student), then, later, the same lines as `del`:
  each a user's last enrolment in the course, which takes their role assignments in
  the contexts below it (one each, made before the round, any component) as Moodle's
  unenrol_user does;
- group_members: the same users added to a group of their course, then removed;
- cohorts: --lines memberships of 50 cohorts added, then removed.

Prints each timing, the medians, and each removal / addition as the median of the
rounds' ratios (target: at most 1.5x). Every run is checked to have applied every line.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import POSTSYNC, Timing, check_applied, timed
from bench.site import build_site

USERS, COURSES, BELOW = 20_000, 500, 4
STEP = {
    "enrolments": "    file: enrols.csv\n",
    "group_members": "    file: members.csv\n    group_key: name\n",
    "cohorts": "    file: cohorts.csv\n",
}


def pairs(lines: int, seed: int = 5) -> list[tuple[int, int]]:
    """(course, user): distinct, each user at most once a course."""
    rng = random.Random(seed)
    found: set[tuple[int, int]] = set()
    while len(found) < lines:
        found.add((rng.randrange(1, COURSES + 1), rng.randrange(1, USERS + 1)))
    return sorted(found)


def write_files(work: Path, chosen: list[tuple[int, int]]) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for cmd in ("add", "del"):
        path = files[f"enrolments {cmd}"] = work / f"enrols-{cmd}.csv"
        with open(path, "w", encoding="utf-8") as out:
            out.write("cmd;cid;uid;rolename\n")
            out.writelines(f"{cmd};C{c:06d};U{u:07d};student\n" for c, u in chosen)
        path = files[f"group_members {cmd}"] = work / f"members-{cmd}.csv"
        with open(path, "w", encoding="utf-8") as out:
            out.write("cmd;courseid;groupid;userid\n")
            out.writelines(f"{cmd};C{c:06d};G1;U{u:07d}\n" for c, u in chosen)
        path = files[f"cohorts {cmd}"] = work / f"cohorts-{cmd}.csv"
        with open(path, "w", encoding="utf-8") as out:
            out.write("cmd;cname;cidnumber;userid\n")
            out.writelines(f"{cmd};Cohort {c % 50};COH{c % 50:03d};U{u:07d}\n" for c, u in chosen)
    return files


def below_courses(
    url: str, chosen: list[tuple[int, int]]
) -> tuple[Callable[[], None], Callable[[], int]]:
    """Activity contexts below every course; returns what gives each chosen user a role
    in one of them (made again before each round: the unenrolments take them), and what
    counts those roles."""
    from sqlalchemy import func, select

    from runner.db.connect import connect, parse_url
    from runner.db.tables import moodle_tables

    engine = connect(parse_url(url, Path.cwd()))
    t = moodle_tables()
    with engine.begin() as conn:
        courses = dict(
            conn.execute(
                select(t.course.c.idnumber, t.context.c.path)
                .join(t.context, t.context.c.instanceid == t.course.c.id)
                .where(t.context.c.contextlevel == 50, t.course.c.idnumber.like("C%"))
            ).all()
        )
        rows = [
            {"contextlevel": 70, "instanceid": n * BELOW + k, "depth": 4, "path": None}
            for n in range(1, COURSES + 1)
            for k in range(BELOW)
        ]
        conn.execute(t.context.insert(), rows)
        made = conn.execute(
            select(t.context.c.id, t.context.c.instanceid).where(t.context.c.contextlevel == 70)
        ).all()
        paths = {
            cid: f"{courses[f'C{(instance - instance % BELOW) // BELOW:06d}']}/{cid}"
            for cid, instance in made
        }
        for cid, path in paths.items():
            conn.execute(t.context.update().where(t.context.c.id == cid).values(path=path))
        by_course: dict[int, list[int]] = {}
        for cid, instance in made:
            by_course.setdefault((instance - instance % BELOW) // BELOW, []).append(cid)
        role = conn.execute(select(t.role.c.id).where(t.role.c.shortname == "student")).scalar()
        users = dict(conn.execute(select(t.user.c.idnumber, t.user.c.id)).all())
    rng = random.Random(9)
    assignments = [
        {
            "roleid": role,
            "contextid": rng.choice(by_course[c]),
            "userid": users[f"U{u:07d}"],
            "component": "",
            "itemid": 0,
            "timemodified": 0,
            "modifierid": 0,
            "sortorder": 0,
        }
        for c, u in chosen
    ]

    def give() -> None:
        with engine.begin() as conn:
            conn.execute(
                t.role_assignments.delete().where(t.role_assignments.c.contextid.in_(list(paths)))
            )
            conn.execute(t.role_assignments.insert(), assignments)

    def held() -> int:
        ra = t.role_assignments.c
        query = select(func.count()).where(ra.contextid.in_(list(paths)))
        with engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    return give, held


def run(work: Path, url: str, command: str, file: Path, lines: int) -> Timing:
    area = work / "area"
    if area.exists():
        shutil.rmtree(area)
    area.mkdir()
    name = STEP[command].split()[1]
    shutil.copy(file, area / name)
    playbook = work / "playbook.yml"
    playbook.write_text(
        f'name: removals\narea: area\ndatabase: "{url}"\nsync:\n'
        f"  - command: {command}\n{STEP[command]}    settle_seconds: 0\n"
    )
    timing = timed([*POSTSYNC, "run", "playbook.yml"], work)
    check_applied(area, lines)
    return timing


def bench(work: Path, url: str, kind: str, lines: int, rounds: int) -> None:
    print(f"{kind}: building the site", flush=True)
    build_site(url, users=USERS, courses=COURSES)
    chosen = pairs(lines)
    give, held = below_courses(url, chosen)
    files = write_files(work, chosen)
    times: dict[str, list[float]] = {}
    for r in range(rounds):
        give()
        for what in (
            "enrolments add",
            "group_members add",
            "group_members del",
            "enrolments del",
            "cohorts add",
            "cohorts del",
        ):
            command = what.split()[0]
            seconds = run(work, url, command, files[what], lines).seconds
            times.setdefault(what, []).append(seconds)
            if what == "enrolments add":
                assert held() == lines, f"{held()} roles below the courses, not {lines}"
            if what == "enrolments del":
                assert held() == 0, f"{held()} roles left below the courses"
            print(f"  {kind} round {r + 1} {what}: {seconds:.2f} s", flush=True)
    for command in ("enrolments", "group_members", "cohorts"):
        add, remove = times[f"{command} add"], times[f"{command} del"]
        ratio = statistics.median(d / a for a, d in zip(add, remove, strict=True))
        print(
            f"{kind} {command}: add {statistics.median(add):.2f} s, del"
            f" {statistics.median(remove):.2f} s: del / add {ratio:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--databases", default="sqlite,postgresql,mariadb")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="postsync-removals-", dir=args.work))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"{started}: {args.lines:,} rows of each, {args.rounds} rounds")
    try:
        with ExitStack() as servers:
            for kind in args.databases.split(","):
                if kind == "sqlite":
                    url = f"sqlite:///{work / 'site.db'}"
                elif kind == "postgresql":
                    from tests.pgserver import start_server

                    server = start_server()
                    servers.callback(server.stop)
                    url = server.create_database("removals")
                else:
                    from tests.mariadbserver import start_server as start_mariadb

                    maria = start_mariadb()
                    servers.callback(maria.stop)
                    url = maria.create_database("removals")
                bench(work, url, kind, args.lines, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
