"""B8: the users, cohorts and groups feeds at 100,000 lines (SQLite), each against the
enrolment sync of as many lines on the same site, in the same run ("a throughput in
the same order as enrolments")."""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from itertools import count
from pathlib import Path

from bench.harness import POSTSYNC, Result, Timing, alternate, check_applied, timed
from bench.site import build_site, enrolment_file

PLAYBOOK = """\
name: B8
area: area
database: "{url}"
sync:
  - command: {command}
    file: {name}
    settle_seconds: 0
"""
USERS, COURSES = 50_000, 2_000


def users_file(path: Path, lines: int, seed: int = 8) -> None:
    """70% new users, 20% updates of the site's users (a changed city), 5% suspensions,
    5% deletions."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as out:
        out.write("username;idnumber;firstname;lastname;email;city;suspended;deleted\n")
        for n in range(lines):
            r = rng.random()
            if r < 0.70:
                out.write(f"n{n:07d};N{n:07d};New;User;n{n:07d}@example.org;Lyon;;\n")
                continue
            i = rng.randrange(1, USERS + 1)
            name = f"u{i:07d};U{i:07d};F;L;u{i:07d}@example.org"
            if r < 0.90:
                out.write(f"{name};Paris {n % 7};;\n")
            elif r < 0.95:
                out.write(f"{name};;1;\n")
            else:
                out.write(f"{name};;;1\n")


def cohorts_file(path: Path, lines: int, seed: int = 8) -> None:
    """Members added to 200 cohorts (created by their first line), 10% removed."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as out:
        out.write("cmd;cname;cidnumber;userid\n")
        for _ in range(lines):
            c = rng.randrange(1, 201)
            cmd = "del" if rng.random() < 0.10 else "add"
            out.write(f"{cmd};Cohort {c};COH{c:04d};U{rng.randrange(1, USERS + 1):07d}\n")


def groups_file(path: Path, lines: int, seed: int = 8) -> None:
    """Groups (90%) and groupings (10%) of the site's courses, each group in one of its
    course's groupings."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as out:
        out.write("type;courseid;name;idnumber;description;grouping\n")
        for n in range(lines):
            course = rng.randrange(1, COURSES + 1)
            if n % 10 == 0:
                out.write(f"grouping;C{course:06d};GP{n};GP{n};;\n")
            else:
                out.write(f"group;C{course:06d};S{n};S{n};Group {n};\n")


def b8(work: Path, rounds: int, scale: float) -> list[Result]:
    lines = max(5_000, int(100_000 * scale))
    data = work / "b8"
    data.mkdir(exist_ok=True)
    enrols = data / "enrols.csv"
    enrolment_file(enrols, lines, users=USERS, courses=COURSES)
    counter = count()

    def run(command: str, file: Path) -> Timing:
        root = data / f"run{next(counter)}"
        (root / "area").mkdir(parents=True)
        shutil.copy(file, root / "area" / file.name)
        url = f"sqlite:///{root / 'moodle.db'}"
        build_site(url, users=USERS, courses=COURSES)
        (root / "playbook.yml").write_text(
            PLAYBOOK.format(url=url, command=command, name=file.name)
        )
        t = timed([*POSTSYNC, "run", "playbook.yml"], root)
        check_applied(root / "area", len(file.read_bytes().splitlines()) - 1)
        shutil.rmtree(root, ignore_errors=True)
        return t

    feeds: list[tuple[str, Callable[[Path, int], None], str]] = [
        ("users", users_file, "70% new users, 20% updates, 5% suspensions, 5% deletions"),
        ("cohorts", cohorts_file, "members of 200 cohorts, 10% of lines removals"),
        ("groups", groups_file, "groups and groupings of 2,000 courses, all new"),
    ]
    results = []
    for command, make, what in feeds:
        file = data / f"{command}.csv"
        make(file, lines)
        r = Result(
            f"B8-{command}",
            f"sync {lines:,} {command} lines on SQLite ({what})",
            "<= 10x",
            limit=10.0,
        )
        alternate(rounds, lambda c=command, f=file: run(c, f), lambda: run("enrolments", enrols), r)
        r.extra["baseline"] = (
            f"the enrolment sync of {lines:,} lines (B4's mix) on the same site, in the same"
            " run: the throughput a feed should match in order of magnitude"
        )
        r.extra["lines/s"] = (
            f"{lines / r.ours_median:,.0f} (enrolments: {lines / r.base_median:,.0f})"
        )
        results.append(r)
    return results
