"""`postsync db init`: the tables of a Moodle release with what a fresh install puts in
them, and a demo site.

Only for the embedded default, demos and tests: on a real Moodle database postsync
uses the existing tables and never creates or alters any.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, inspect, select

from runner.core.errors import StepError
from runner.db.columns import filled
from runner.db.tables import MoodleTables, new_id

CONTEXT_SYSTEM, CONTEXT_COURSECAT, CONTEXT_COURSE = 10, 40, 50
#: Moodle's install order (lib/db/install.php); shortname == archetype
STANDARD_ROLES = (
    "manager",
    "coursecreator",
    "editingteacher",
    "teacher",
    "student",
    "guest",
    "user",
    "frontpage",
)


@dataclass(frozen=True)
class DemoSite:
    users: int
    courses: int
    groups: int
    enrolments: int


def create_tables(engine: Engine, tables: MoodleTables, now: int) -> None:
    """Create the tables and a fresh install's rows; refuse if any table exists."""
    existing = set(inspect(engine).get_table_names())
    clash = sorted(t.name for t in tables.all if t.name in existing)
    if clash:
        raise StepError(
            f"refusing to touch an existing database: {', '.join(clash)} already"
            " exist (postsync never alters a Moodle schema)"
        )
    if engine.dialect.name == "postgresql":
        _pattern_index(tables)
    tables.metadata.create_all(engine)
    with engine.begin() as conn:
        _install(conn, tables, now)


def _pattern_index(tables: MoodleTables) -> None:
    """Moodle's hint for `path LIKE '/1/3/%'`: on PostgreSQL, a second index of the
    context's path with `varchar_pattern_ops` (added here, not with the tables: its
    option loads SQLAlchemy's PostgreSQL dialect, 25 ms of every run's start)."""
    from sqlalchemy import Index

    name = f"{tables.prefix}cont_pat_ix_pattern"
    if all(index.name != name for index in tables.context.indexes):
        Index(name, tables.context.c.path, postgresql_ops={"path": "varchar_pattern_ops"})


def _context(conn: Connection, t: MoodleTables, level: int, instance: int, parent_path: str) -> int:
    """Insert a context as Moodle does: get the id, then set path and depth."""
    ctx = t.context
    context_id = new_id(
        conn.execute(
            ctx.insert().values(contextlevel=level, instanceid=instance, depth=0, path=None)
        )
    )
    path = f"{parent_path}/{context_id}"
    conn.execute(
        ctx.update().where(ctx.c.id == context_id).values(path=path, depth=path.count("/"))
    )
    return context_id


def _install(conn: Connection, t: MoodleTables, now: int) -> None:
    conn.execute(
        t.role.insert(),
        [
            {
                "name": "",
                "shortname": name,
                "description": "",
                "sortorder": i + 1,
                "archetype": name,
            }
            for i, name in enumerate(STANDARD_ROLES)
        ],
    )
    _context(conn, t, CONTEXT_SYSTEM, 0, "")
    # the settings a fresh Moodle install writes that postsync reads: the guest (user
    # 1), the main administrator (user 2), this site's mnet host; the release, as
    # Moodle records it (runner.db.releases: its version says how a users file's
    # passwords are hashed)
    conn.execute(
        t.config.insert(),
        [
            {"name": "siteguest", "value": "1"},
            {"name": "siteadmins", "value": "2"},
            {"name": "mnet_localhost_id", "value": "1"},
            {"name": "version", "value": t.release.version},
            {"name": "release", "value": t.release.release},
            {"name": "branch", "value": t.release.branch},
        ],
    )
    base = {
        "auth": "manual",
        "confirmed": 1,
        "mnethostid": 1,
        "idnumber": "",
        "timecreated": now,
        "timemodified": now,
    }
    conn.execute(
        t.user.insert(),
        [
            filled(t.user)
            | {
                **base,
                "username": "guest",
                "password": "",
                "firstname": "Guest user",
                "lastname": " ",
                "email": "root@localhost",
            },
            filled(t.user)
            | {
                **base,
                "username": "admin",
                "password": "adminsetuppending",
                "firstname": "Admin",
                "lastname": "User",
                "email": "admin@localhost",
            },
        ],
    )
    site = new_id(
        conn.execute(
            t.course.insert().values(
                filled(
                    t.course,
                    category=0,
                    fullname="postsync site",
                    shortname="site",
                    idnumber="",
                    format="site",
                    timecreated=now,
                    timemodified=now,
                )
            )
        )
    )
    _context(conn, t, CONTEXT_COURSE, site, "/1")
    category = new_id(
        conn.execute(
            t.course_categories.insert().values(
                filled(t.course_categories, name="Category 1", depth=1, path="", timemodified=now)
            )
        )
    )
    conn.execute(
        t.course_categories.update()
        .where(t.course_categories.c.id == category)
        .values(path=f"/{category}")
    )
    _context(conn, t, CONTEXT_COURSECAT, int(category), "/1")


SUBJECTS = ("MATH", "PHYS", "CHEM", "BIOL", "HIST", "GEOG", "LANG", "ECON", "PHIL")
LEVELS = ("101", "102", "201", "202")
FIRST = (
    "Ada",
    "Blaise",
    "Camille",
    "Dalia",
    "Emile",
    "Fatou",
    "Gaspard",
    "Hélène",
    "Ilyes",
    "Jeanne",
    "Karim",
    "Léa",
    "Marius",
    "Nadia",
    "Oscar",
    "Pauline",
)
LAST = (
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefèvre",
    "Michel",
    "Garcia",
    "N'Diaye",
)


def seed_demo(engine: Engine, t: MoodleTables, now: int, users: int = 300) -> DemoSite:
    """A deterministic site: users U0001..., courses MATH101..., manual enrol
    instances, two groups per course, 20 students in MATH102 and PHYS102; the last user
    is deleted."""
    with engine.begin() as conn:
        category = conn.execute(select(t.course_categories.c.id)).scalar_one()
        cat_ctx = conn.execute(
            select(t.context.c.path).where(
                t.context.c.contextlevel == CONTEXT_COURSECAT, t.context.c.instanceid == category
            )
        ).scalar_one()
        conn.execute(
            t.user.insert(),
            [
                filled(t.user)
                | {
                    "auth": "manual",
                    "confirmed": 1,
                    "mnethostid": 1,
                    "username": f"u{i:04d}",
                    "password": "",
                    "idnumber": f"U{i:04d}",
                    "firstname": FIRST[i % len(FIRST)],
                    "lastname": LAST[(i * 7) % len(LAST)],
                    "email": f"u{i:04d}@example.org",
                    "deleted": 1 if i == users else 0,
                    "timecreated": now,
                    "timemodified": now,
                }
                for i in range(1, users + 1)
            ],
        )
        student = conn.execute(
            select(t.role.c.id).where(t.role.c.shortname == "student")
        ).scalar_one()
        courses = []
        for sortorder, (subject, level) in enumerate(
            ((s, lv) for s in SUBJECTS for lv in LEVELS), start=1
        ):
            code = f"{subject}{level}"
            course_id = new_id(
                conn.execute(
                    t.course.insert().values(
                        filled(
                            t.course,
                            category=category,
                            sortorder=sortorder,
                            fullname=f"{subject.title()} {level}",
                            shortname=code,
                            idnumber=code,
                            timecreated=now,
                            timemodified=now,
                            startdate=now,
                        )
                    )
                )
            )
            _context(conn, t, CONTEXT_COURSE, course_id, cat_ctx)
            courses.append((course_id, code))
        conn.execute(
            t.enrol.insert(),
            [
                {
                    "enrol": "manual",
                    "status": 0,
                    "courseid": cid,
                    "sortorder": 0,
                    "roleid": student,
                    "enrolperiod": 0,
                    "enrolstartdate": 0,
                    "enrolenddate": 0,
                    "expirynotify": 0,
                    "expirythreshold": 86400,
                    "notifyall": 0,
                    "timecreated": now,
                    "timemodified": now,
                }
                for cid, _ in courses
            ],
        )
        conn.execute(
            t.groups.insert(),
            [
                filled(t.groups)
                | {
                    "courseid": cid,
                    "idnumber": f"{code}-G{n}",
                    "name": f"G{n}",
                    "description": "",
                    "timecreated": now,
                    "timemodified": now,
                }
                for cid, code in courses
                for n in (1, 2)
            ],
        )
        enrolled = _seed_students(conn, t, now, student, ("MATH102", "PHYS102"), range(101, 121))
    return DemoSite(users, len(courses), 2 * len(courses), enrolled)


def _seed_students(
    conn: Connection,
    t: MoodleTables,
    now: int,
    student: int,
    codes: tuple[str, ...],
    numbers: range,
) -> int:
    """Users U0101... enrolled as students (manual) in the given courses."""
    c, e, x, u = t.course.c, t.enrol.c, t.context.c, t.user.c
    targets = conn.execute(
        select(e.id, x.id)
        .join_from(t.enrol, t.course, e.courseid == c.id)
        .join(t.context, (x.instanceid == c.id) & (x.contextlevel == CONTEXT_COURSE))
        .where(c.idnumber.in_(codes), e.enrol == "manual")
    ).all()
    user_ids = (
        conn.execute(select(u.id).where(u.idnumber.in_([f"U{i:04d}" for i in numbers])))
        .scalars()
        .all()
    )
    conn.execute(
        t.user_enrolments.insert(),
        [
            {
                "enrolid": enrol_id,
                "userid": uid,
                "status": 0,
                "timestart": 0,
                "timeend": 0,
                "modifierid": 0,
                "timecreated": now,
                "timemodified": now,
            }
            for enrol_id, _ in targets
            for uid in user_ids
        ],
    )
    conn.execute(
        t.role_assignments.insert(),
        [
            {
                "roleid": student,
                "contextid": context_id,
                "userid": uid,
                "component": "",
                "itemid": 0,
                "timemodified": now,
                "modifierid": 0,
                "sortorder": 0,
            }
            for _, context_id in targets
            for uid in user_ids
        ],
    )
    return len(targets) * len(user_ids)
