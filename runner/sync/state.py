"""The part of Moodle's state a batch of control-file lines touches, and its changes.

A batch of lines is applied in three moves: load (a few set-based SELECTs for every
user and course the batch names), simulate (each line in order against the loaded
state, in memory, so a line sees what the lines before it did), and flush (a few
executemany INSERT/UPDATE/DELETE). No per-line round trip.

The flush is pipelined: batch N's writes run on the connection in a second thread
while batch N+1 is simulated. The database is never used by both threads at once:
batch N+1's lookups run before batch N's writes start, and for the (user, course)
pairs batch N touched, batch N+1 takes batch N's state (the database with batch N's
changes) instead of the database's. Rows batch N inserted have no id yet in that
state: a later batch deletes or updates them by their key, resolved when it flushes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.pool import SingletonThreadPool

from runner.db.tables import MoodleTables, new_id
from runner.sync.base import Course, LineFailed
from runner.sync.raw import Raw, Statements
from runner.sync.reader import DataLine

CONTEXT_COURSE = 50
#: bound parameters per IN list (SQLite allows 32766 in all, older builds 999)
CHUNK = 900

ENROL_ACTIVE, ENROL_SUSPENDED = 0, 1
#: resolved user keys kept from batch to batch (a file names the same users again and
#: again); past this many, the next batch starts afresh, which bounds the memory
USERS_KEPT = 200_000


@dataclass(slots=True)
class Enrolment:
    id: int | None  # None until flushed
    status: int
    timestart: int
    timeend: int


#: the key of a row of each table a batch writes, as `Pending` holds it (flattened)
KEY_COLUMNS = {
    "user_enrolments": ("enrolid", "userid"),
    "role_assignments": ("contextid", "userid", "roleid", "component", "itemid"),
    "groups_members": ("groupid", "userid"),
}


def _flat_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    """(contextid, userid, (roleid, component, itemid)) -> one flat tuple."""
    return key[:-1] + key[-1] if isinstance(key[-1], tuple) else key


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@dataclass
class Pending:
    """Changes to one table: new rows by key, updated and deleted ids; and, for rows an
    earlier batch inserted (their id not known yet), updates and deletions by key."""

    new: dict[Any, dict[str, Any]] = field(default_factory=dict)
    updated: dict[int, dict[str, Any]] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    updated_keys: dict[Any, dict[str, Any]] = field(default_factory=dict)
    deleted_keys: set[Any] = field(default_factory=set)

    def delete(self, key: Any, row_id: int | None) -> None:
        if row_id is not None:
            self.updated.pop(row_id, None)
            self.deleted.add(row_id)
        elif key in self.new:
            del self.new[key]
        else:
            self.updated_keys.pop(key, None)
            self.deleted_keys.add(key)

    def update(self, key: Any, row_id: int | None, values: dict[str, Any]) -> None:
        if row_id is not None:
            self.updated[row_id] = values
        elif key in self.new:
            self.new[key].update(values)
        else:
            self.updated_keys[key] = values


class Writer:
    """Runs one job at a time on the connection, in a second thread or inline."""

    def __init__(self, inline: bool) -> None:
        self._pool = None if inline else ThreadPoolExecutor(1, "postsync-flush")
        self._running: Future[None] | None = None

    def submit(self, job: Callable[[], None]) -> None:
        self.wait()
        if self._pool is None:
            job()
        else:
            self._running = self._pool.submit(job)

    def wait(self) -> None:
        """Until the running job is done; raises what it raised."""
        running, self._running = self._running, None
        if running is not None:
            running.result()

    def close(self) -> None:
        """Waits for the running job, whatever it raises (the caller is failing)."""
        with suppress(Exception):  # the caller's own error is the one to report
            self.wait()
        if self._pool is not None:
            self._pool.shutdown()


def _threaded_writes(conn: Connection) -> bool:
    """Whether a second thread may write on this connection (an in-memory SQLite
    database lives in one thread's connection)."""
    if conn.dialect.name == "postgresql":
        return True
    return conn.dialect.name == "sqlite" and not isinstance(conn.engine.pool, SingletonThreadPool)


class SiteState:
    """Lookups kept for a whole control file (courses, roles, groups, enrol instances)
    and per-batch state of the (user, course) pairs the batch names."""

    def __init__(
        self, conn: Connection, tables: MoodleTables, now: int, *, course_key: str, user_key: str
    ) -> None:
        self.conn = conn
        self.raw = Raw(conn)
        self.t = tables
        self.now = now
        self.course_key = course_key
        self.user_key = user_key
        self.roles: dict[str, int] = {
            r.shortname: r.id
            for r in conn.execute(select(tables.role.c.id, tables.role.c.shortname))
        }
        self._courses: dict[str, Course | str] = {}
        # course id -> its enrol instances as (sortorder, id, plugin, status)
        self._enrols: dict[int, list[tuple[int, int, str, int]]] = {}
        self._enrol_course: dict[int, int] = {}
        self._groups: dict[int, dict[str, list[int]]] = {}
        self._group_course: dict[int, int] = {}
        self._group_idnumbers: dict[int, dict[str, list[int]]] = {}
        self.users: dict[str, int | str] = {}
        #: groups whose members changed: their timemodified is set once, by `finish`
        self.touched_groups: set[int] = set()
        # A batch's writes run in a second thread while the next batch is simulated:
        # the driver waits for the database without Python's lock (PostgreSQL: one
        # statement per table and batch; SQLite: statements of many rows each, see
        # Raw.inserts, since its driver takes the lock back after every row of an
        # executemany).
        self.writer = Writer(inline=not _threaded_writes(conn))
        #: the previous batch's changes, written once the next batch has looked up its state
        self._ready: tuple[Pending, Pending, Pending] | None = None
        self.pairs: set[tuple[int, int, int]] = set()
        self.reset_batch()

    def db(self) -> Connection:
        """The connection, once the writer is done with it."""
        self.writer.wait()
        return self.conn

    # -- lookups ---------------------------------------------------------------------

    def _match(self, table: Any, column: str, values: Iterable[str]) -> dict[str, list[int]]:
        """value -> ids of rows whose `column` equals it (ids as ints for column `id`)."""
        assert column in table.c, column  # from the schema: idnumber, username, email, id
        wanted = sorted(set(values))
        if column == "id":
            wanted = [v for v in wanted if v.isdigit()]
        found: dict[str, list[int]] = {}
        # deleted users and the front page course are left out here rather than in the
        # WHERE clause, so that the database looks the keys up by their own index
        skip = "deleted" if table is self.t.user else "category"
        skip_value = 1 if table is self.t.user else 0
        for part in chunks(wanted, self.raw.chunk):
            keys: Sequence[Any] = [int(v) for v in part] if column == "id" else part
            self.writer.wait()
            for row_id, value, flag in self.raw.select_in(
                table, ("id", column, skip), column, keys
            ):
                if flag != skip_value:
                    found.setdefault(str(value), []).append(row_id)
        return found

    def resolve_users(self, values: Iterable[str]) -> None:
        todo = {v for v in values if v and v not in self.users}
        found = self._match(self.t.user, self.user_key, todo)
        for value in todo:
            ids = found.get(value, [])
            if len(ids) == 1:
                self.users[value] = ids[0]
            elif ids:
                self.users[value] = f"{len(ids)} users have {self.user_key} {value}"
            else:
                self.users[value] = f"no such user ({self.user_key} {value})"

    def resolve_courses(self, values: Iterable[str]) -> None:
        todo = {v for v in values if v and v not in self._courses}
        found = self._match(self.t.course, self.course_key, todo)
        ids = sorted({i[0] for i in found.values() if len(i) == 1})
        contexts: dict[int, int] = {}
        ctx = self.t.context.c
        for part in chunks(ids):
            rows = self.db().execute(
                select(ctx.instanceid, ctx.id).where(
                    ctx.contextlevel == CONTEXT_COURSE, ctx.instanceid.in_(part)
                )
            )
            for instance, context in rows:
                contexts[instance] = context
        for value in todo:
            match = found.get(value, [])
            if len(match) > 1:
                self._courses[value] = f"{len(match)} courses have {self.course_key} {value}"
            elif not match:
                self._courses[value] = f"no such course ({self.course_key} {value})"
            elif match[0] not in contexts:
                self._courses[value] = f"course {value} has no context (run Moodle's cron)"
            else:
                self._courses[value] = Course(match[0], contexts[match[0]], value)

    def user(self, value: str, column: str) -> int:
        if not value:
            raise LineFailed(f"empty {column}")
        found = self.users[value]
        if isinstance(found, str):
            raise LineFailed(found)
        return found

    def course(self, value: str, column: str) -> Course:
        if not value:
            raise LineFailed(f"empty {column}")
        found = self._courses[value]
        if isinstance(found, str):
            raise LineFailed(found)
        return found

    def role(self, shortname: str) -> int:
        if not shortname:
            raise LineFailed("empty rolename")
        if shortname not in self.roles:
            raise LineFailed(f"no such role {shortname!r}")
        return self.roles[shortname]

    def instance(self, course: Course, plugin: str) -> tuple[int, int] | None:
        """(enrol.id, status) of the course's first instance of `plugin`, if any."""
        if course.id not in self._enrols:
            self.load_courses([course.id])
        for _sortorder, eid, name, status in self._enrols[course.id]:
            if name == plugin:
                return eid, status
        return None

    def load_courses(self, course_ids: Iterable[int]) -> None:
        """The enrol instances and groups of these courses (kept for the whole file)."""
        todo = sorted({c for c in course_ids if c not in self._enrols})
        if not todo:
            return
        e, g = self.t.enrol.c, self.t.groups.c
        for cid in todo:
            self._enrols[cid] = []
            self._groups[cid] = {}
            self._group_idnumbers[cid] = {}
        for part in chunks(todo):
            rows = self.db().execute(
                select(e.sortorder, e.id, e.enrol, e.status, e.courseid).where(e.courseid.in_(part))
            )
            for sortorder, eid, plugin, status, cid in rows:
                self._enrols[cid].append((sortorder, eid, plugin, status))
                self._enrol_course[eid] = cid
            groups = self.conn.execute(
                select(g.id, g.name, g.idnumber, g.courseid).where(g.courseid.in_(part))
            )
            for gid, name, idnumber, cid in groups:
                self._groups[cid].setdefault(name, []).append(gid)
                if idnumber:
                    self._group_idnumbers[cid].setdefault(idnumber, []).append(gid)
                self._group_course[gid] = cid
        for cid in todo:
            self._enrols[cid].sort()

    def create_manual_instance(self, course: Course) -> int:
        """Moodle's enrol_manual add_default_instance, with its defaults."""
        e = self.t.enrol
        sortorder = (
            self.db()
            .execute(
                select(func.coalesce(func.max(e.c.sortorder), -1) + 1).where(
                    e.c.courseid == course.id
                )
            )
            .scalar_one()
        )
        student = self.conn.execute(
            select(self.t.role.c.id)
            .where(self.t.role.c.archetype == "student")
            .order_by(self.t.role.c.sortorder)
            .limit(1)
        ).scalar()
        result = self.conn.execute(
            e.insert().values(
                enrol="manual",
                status=0,
                courseid=course.id,
                sortorder=sortorder,
                roleid=student or 0,
                enrolperiod=0,
                enrolstartdate=0,
                enrolenddate=0,
                expirynotify=0,
                expirythreshold=86400,
                notifyall=0,
                timecreated=self.now,
                timemodified=self.now,
            )
        )
        enrol_id = new_id(result)
        self._enrols[course.id].append((sortorder, enrol_id, "manual", 0))
        self._enrols[course.id].sort()
        self._enrol_course[enrol_id] = course.id
        return enrol_id

    def group(self, course: Course, value: str, key: str = "name") -> int | None:
        """The id of the course's group whose `key` (name or idnumber) is `value`."""
        if course.id not in self._groups:
            self.load_courses([course.id])
        index = self._groups if key == "name" else self._group_idnumbers
        ids = index[course.id].get(value, [])
        if len(ids) > 1:
            raise LineFailed(f"{len(ids)} groups have {key} {value!r} in course {course.key}")
        return ids[0] if ids else None

    def create_group(self, course: Course, name: str) -> int:
        result = self.db().execute(
            self.t.groups.insert().values(
                courseid=course.id,
                idnumber="",
                name=name,
                description="",
                descriptionformat=1,
                timecreated=self.now,
                timemodified=self.now,
            )
        )
        gid = new_id(result)
        self._groups[course.id].setdefault(name, []).append(gid)
        self._group_course[gid] = course.id
        return gid

    # -- per-batch state ---------------------------------------------------------------

    def reset_batch(self) -> None:
        #: the state of the batch just simulated, for the pairs the next batch shares
        self._previous = (
            (self.pairs, self.enrolments, self.course_enrolments, self.roles_of, self.members)
            if self.pairs
            else None
        )
        self.pairs = set()
        # (enrolid, userid) -> Enrolment; (courseid, userid) -> {enrolid}
        self.enrolments: dict[tuple[int, int], Enrolment] = {}
        self.course_enrolments: dict[tuple[int, int], set[int]] = {}
        # (contextid, userid) -> {(roleid, component, itemid): id | None}
        self.roles_of: dict[tuple[int, int], dict[tuple[int, str, int], int | None]] = {}
        # (courseid, userid) -> {groupid: id | None}
        self.members: dict[tuple[int, int], dict[int, int | None]] = {}
        self.ue = Pending()
        self.ra = Pending()
        self.gm = Pending()
        if len(self.users) > USERS_KEPT:
            self.users.clear()

    def prepare(self, lines: Sequence[DataLine], *, course_column: str, user_column: str) -> None:
        """Resolve a batch's users and courses, then load the state they share."""
        rows = [line.values for line in lines if line.values is not None]
        self.resolve_users(r[user_column] for r in rows)
        self.resolve_courses(r[course_column] for r in rows)
        pairs = set()
        for r in rows:
            user = self.users.get(r[user_column])
            course = self._courses.get(r[course_column])
            if isinstance(user, int) and isinstance(course, Course):
                pairs.add((course.id, course.context_id, user))
        self.load_courses(c for c, _, _ in pairs)
        self.pairs = pairs
        if self._previous is not None:
            pairs = pairs - self._carry(pairs)
        self.load(pairs)
        self._write_ready()  # the previous batch's writes, while this one runs

    def _carry(self, pairs: set[tuple[int, int, int]]) -> set[tuple[int, int, int]]:
        """Takes the previous batch's state of the pairs it shares with this one (the
        database has not got its changes yet); returns those pairs."""
        assert self._previous is not None
        previous, enrolments, course_enrolments, roles_of, members = self._previous
        self._previous = None
        shared = pairs & previous
        for course, context, user in shared:
            enrolids = course_enrolments.get((course, user))
            if enrolids is not None:
                self.course_enrolments[(course, user)] = enrolids
                for enrolid in enrolids:
                    self.enrolments[(enrolid, user)] = enrolments[(enrolid, user)]
            if (context, user) in roles_of:
                self.roles_of[(context, user)] = roles_of[(context, user)]
            if (course, user) in members:
                self.members[(course, user)] = members[(course, user)]
        return shared

    def load(self, pairs: set[tuple[int, int, int]]) -> None:
        """Enrolments, role assignments and group memberships of these (course id,
        context id, user id): a few SELECTs on exact keys (Moodle's unique indexes)."""
        if not pairs:
            return
        self.writer.wait()
        t = self.t
        enrol_keys = sorted(
            (eid, user) for course, _, user in pairs for _, eid, _, _ in self._enrols[course]
        )
        for part in chunks(enrol_keys, self.raw.pairs):
            rows = self.raw.select_keys(
                t.user_enrolments,
                ("id", "enrolid", "userid", "status", "timestart", "timeend"),
                ("enrolid", "userid"),
                part,
            )
            for uid, enrolid, userid, status, start, end in rows:
                self.enrolments[(enrolid, userid)] = Enrolment(uid, status, start, end)
                course = self._enrol_course[enrolid]
                self.course_enrolments.setdefault((course, userid), set()).add(enrolid)
        role_keys = sorted({(user, context) for _, context, user in pairs})
        for part in chunks(role_keys, self.raw.pairs):
            assignments = self.raw.select_keys(
                t.role_assignments,
                ("id", "contextid", "userid", "roleid", "component", "itemid"),
                ("userid", "contextid"),
                part,
            )
            for aid, contextid, userid, roleid, component, itemid in assignments:
                self.roles_of.setdefault((contextid, userid), {})[(roleid, component, itemid)] = aid
        member_keys = sorted(
            (user, gid)
            for course, _, user in pairs
            for gids in self._groups[course].values()
            for gid in gids
        )
        for part in chunks(member_keys, self.raw.pairs):
            members = self.raw.select_keys(
                t.groups_members, ("id", "groupid", "userid"), ("userid", "groupid"), part
            )
            for mid, groupid, userid in members:
                course = self._group_course[groupid]
                self.members.setdefault((course, userid), {})[groupid] = mid

    # -- simulated changes ---------------------------------------------------------------

    def enrolled(self, course: Course, userid: int) -> bool:
        return bool(self.course_enrolments.get((course.id, userid)))

    def ensure_enrolment(
        self,
        course: Course,
        enrolid: int,
        userid: int,
        timestart: int | None,
        timeend: int | None,
        status: int | None = ENROL_ACTIVE,
    ) -> bool:
        key = (enrolid, userid)
        current = self.enrolments.get(key)
        if current is None:
            row = {
                "enrolid": enrolid,
                "userid": userid,
                "status": status or 0,
                "timestart": timestart or 0,
                "timeend": timeend or 0,
                "modifierid": 0,
                "timecreated": self.now,
                "timemodified": self.now,
            }
            self.ue.new[key] = row
            self.enrolments[key] = Enrolment(None, row["status"], row["timestart"], row["timeend"])
            self.course_enrolments.setdefault((course.id, userid), set()).add(enrolid)
            return True
        wanted = Enrolment(
            current.id,
            current.status if status is None else status,
            current.timestart if timestart is None else timestart,
            current.timeend if timeend is None else timeend,
        )
        if wanted == current:
            return False
        self.enrolments[key] = wanted
        values = {
            "status": wanted.status,
            "timestart": wanted.timestart,
            "timeend": wanted.timeend,
            "timemodified": self.now,
        }
        self.ue.update(key, current.id, values)
        return True

    def remove_enrolment(self, course: Course, enrolid: int, userid: int) -> bool:
        key = (enrolid, userid)
        current = self.enrolments.pop(key, None)
        if current is None:
            return False
        self.ue.delete(key, current.id)
        self.course_enrolments[(course.id, userid)].discard(enrolid)
        return True

    def roles_in(self, course: Course, userid: int) -> dict[tuple[int, str, int], int | None]:
        return self.roles_of.setdefault((course.context_id, userid), {})

    def assign(self, course: Course, userid: int, role: tuple[int, str, int]) -> bool:
        held = self.roles_in(course, userid)
        if role in held:
            return False
        held[role] = None
        self.ra.new[(course.context_id, userid, role)] = {
            "roleid": role[0],
            "contextid": course.context_id,
            "userid": userid,
            "component": role[1],
            "itemid": role[2],
            "timemodified": self.now,
            "modifierid": 0,
            "sortorder": 0,
        }
        return True

    def unassign(self, course: Course, userid: int, role: tuple[int, str, int]) -> bool:
        held = self.roles_in(course, userid)
        if role not in held:
            return False
        self.ra.delete((course.context_id, userid, role), held.pop(role))
        return True

    def groups_of(self, course: Course, userid: int) -> dict[int, int | None]:
        return self.members.setdefault((course.id, userid), {})

    def add_member(self, course: Course, userid: int, groupid: int) -> bool:
        held = self.groups_of(course, userid)
        if groupid in held:
            return False
        held[groupid] = None
        self.gm.new[(groupid, userid)] = {
            "groupid": groupid,
            "userid": userid,
            "timeadded": self.now,
            "component": "",
            "itemid": 0,
        }
        self.touched_groups.add(groupid)
        return True

    def remove_member(self, course: Course, userid: int, groupid: int) -> bool:
        held = self.groups_of(course, userid)
        if groupid not in held:
            return False
        self.gm.delete((groupid, userid), held.pop(groupid))
        self.touched_groups.add(groupid)
        return True

    # -- flush ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Ends the batch: its changes are written once the next batch has looked up
        its own state (`prepare`), or by `finish`."""
        assert self._ready is None
        self._ready = (self.ue, self.ra, self.gm)
        self.reset_batch()

    def _write_ready(self) -> None:
        """Hands the ended batch's changes to the writer, as statements built here:
        the writer thread then only waits for the database, without Python's lock."""
        if self._ready is not None:
            changes, self._ready = self._ready, None
            statements = self._statements(*changes)
            self.writer.submit(lambda: self.raw.run(statements))

    def _resolve(self, table: Any, pending: Pending) -> None:
        """The ids of the rows an earlier batch inserted that this one updates or
        deletes (by key: each key is one row, inserted by this sync)."""
        keys = [*pending.deleted_keys, *pending.updated_keys]
        if not keys:
            return
        columns = KEY_COLUMNS[table.name.removeprefix(self.t.prefix)]
        flat = {key: _flat_key(key) for key in keys}
        ids = {}
        size = self.raw.chunk // len(columns)
        self.writer.wait()  # the rows an earlier batch inserted are written
        for part in chunks(sorted(flat.values()), size):
            for row in self.raw.select_keys(table, ("id", *columns), columns, part):
                ids[tuple(row[1:])] = row[0]
        pending.deleted.update(ids[flat[key]] for key in pending.deleted_keys)
        for key, values in pending.updated_keys.items():
            pending.updated[ids[flat[key]]] = values

    def _statements(self, ue: Pending, ra: Pending, gm: Pending) -> Statements:
        """A batch's net changes: deletes, then updates, then inserts."""
        t, raw = self.t, self.raw
        statements: Statements = []
        for table, pending in (
            (t.groups_members, gm),
            (t.role_assignments, ra),
            (t.user_enrolments, ue),
        ):
            self._resolve(table, pending)
            for part in chunks(sorted(pending.deleted), raw.chunk):
                statements += raw.deletes(table, part)
        statements += raw.updates(
            t.user_enrolments,
            ("status", "timestart", "timeend", "timemodified"),
            [
                (v["status"], v["timestart"], v["timeend"], v["timemodified"], i)
                for i, v in ue.updated.items()
            ],
        )
        for table, pending in (
            (t.user_enrolments, ue),
            (t.role_assignments, ra),
            (t.groups_members, gm),
        ):
            if pending.new:
                columns = tuple(next(iter(pending.new.values())))
                row = itemgetter(*columns)
                # in key order: each index is updated page after page, not at random
                new = [row(pending.new[k]) for k in sorted(pending.new)]
                statements += raw.inserts(table, columns, new)
        return statements

    def finish(self) -> None:
        """After the last batch: its changes, then the touched groups' timemodified,
        once per group (an update per batch would rewrite the same rows again and
        again)."""
        self._write_ready()
        self.writer.wait()
        for part in chunks(sorted(self.touched_groups), self.raw.chunk):
            self.raw.update_in(self.t.groups, {"timemodified": self.now}, part)
        self.touched_groups.clear()

    def close(self) -> None:
        """Waits for the writer (a failing sync must not roll back under it)."""
        self.writer.close()
