"""A large Moodle site and large control files for the benchmarks (deterministic)."""

from __future__ import annotations

import random
import time
from pathlib import Path

from sqlalchemy import Engine, String, cast, literal, select, update

from runner.db.columns import filled
from runner.db.connect import connect, parse_url
from runner.db.init import create_tables
from runner.db.tables import MoodleTables, moodle_tables

CHUNK = 20_000


def _chunks(rows: list[dict[str, object]]) -> list[list[dict[str, object]]]:
    return [rows[i : i + CHUNK] for i in range(0, len(rows), CHUNK)]


def build_site(url: str, *, users: int, courses: int, groups_per_course: int = 2) -> None:
    """Users U0000001..., courses C000001... with course contexts, a manual enrol
    instance and `groups_per_course` groups (G1, G2...) each."""
    engine: Engine = connect(parse_url(url, Path.cwd()))
    t: MoodleTables = moodle_tables()
    now = int(time.time())
    create_tables(engine, t, now)
    with engine.begin() as conn:
        category = conn.execute(select(t.course_categories.c.id)).scalar_one()
        student = conn.execute(
            select(t.role.c.id).where(t.role.c.shortname == "student")
        ).scalar_one()
        user_rows: list[dict[str, object]] = [
            filled(t.user)
            | {
                "auth": "manual",
                "confirmed": 1,
                "mnethostid": 1,
                "username": f"u{i:07d}",
                "password": "",
                "idnumber": f"U{i:07d}",
                "firstname": "F",
                "lastname": "L",
                "email": f"u{i:07d}@example.org",
                "timecreated": now,
                "timemodified": now,
            }
            for i in range(1, users + 1)
        ]
        for part in _chunks(user_rows):
            conn.execute(t.user.insert(), part)
        course_rows: list[dict[str, object]] = [
            filled(t.course)
            | {
                "category": category,
                "sortorder": i,
                "fullname": f"Course {i}",
                "shortname": f"C{i:06d}",
                "idnumber": f"C{i:06d}",
                "timecreated": now,
                "timemodified": now,
            }
            for i in range(1, courses + 1)
        ]
        for part in _chunks(course_rows):
            conn.execute(t.course.insert(), part)
        ids = [
            r[0]
            for r in conn.execute(
                select(t.course.c.id).where(t.course.c.idnumber.like("C%")).order_by(t.course.c.id)
            )
        ]
        for part in _chunks([{"contextlevel": 50, "instanceid": cid, "depth": 3} for cid in ids]):
            conn.execute(t.context.insert(), part)
        conn.execute(
            update(t.context)
            .where(t.context.c.contextlevel == 50, t.context.c.path.is_(None))
            .values(path=literal("/1/", String) + cast(t.context.c.id, String))
        )
        enrol = [
            {
                "enrol": "manual",
                "status": 0,
                "courseid": cid,
                "sortorder": 0,
                "roleid": student,
                "expirythreshold": 86400,
                "timecreated": now,
                "timemodified": now,
            }
            for cid in ids
        ]
        for part in _chunks(enrol):
            conn.execute(t.enrol.insert(), part)
        group_rows: list[dict[str, object]] = [
            filled(t.groups)
            | {
                "courseid": cid,
                "idnumber": f"{cid}-G{g}",
                "name": f"G{g}",
                "description": "",
                "timecreated": now,
                "timemodified": now,
            }
            for cid in ids
            for g in range(1, groups_per_course + 1)
        ]
        for part in _chunks(group_rows):
            conn.execute(t.groups.insert(), part)
    engine.dispose()


def enrolment_file(
    path: Path, lines: int, *, users: int, courses: int, failing: float = 0.05, seed: int = 1
) -> None:
    """adds (with group commands), dels, shifts, and `failing` unknown users."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as out:
        out.write("cmd;cid;uid;rolename;gcmd;g1\n")
        for n in range(lines):
            course = f"C{rng.randrange(1, courses + 1):06d}"
            user = f"U{rng.randrange(1, users + 1):07d}"
            if rng.random() < failing:
                user = f"X{n:07d}"  # no such user
            r = rng.random()
            if r < 0.70:
                out.write(f"add;{course};{user};student;gadd;G{1 + n % 2}\n")
            elif r < 0.85:
                out.write(f"add;{course};{user};teacher;;\n")
            elif r < 0.95:
                out.write(f"del;{course};{user};student;;\n")
            else:
                out.write(f"shift;{course};{user};student;;\n")
