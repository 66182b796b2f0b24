"""The part of Moodle's state a batch of control-file lines touches, and its changes.

A batch of lines is applied in three moves: load (a few set-based SELECTs for every
user and course the batch names), simulate (each line in order against the loaded
state, in memory, so a line sees what the lines before it did), and flush (a few
executemany INSERT/UPDATE/DELETE). No per-line round trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from runner.db.tables import MoodleTables, new_id
from runner.sync.base import Course, LineFailed
from runner.sync.reader import DataLine

CONTEXT_COURSE = 50
#: bound parameters per IN list (SQLite allows 32766 in all, older builds 999)
CHUNK = 900

ENROL_ACTIVE, ENROL_SUSPENDED = 0, 1


@dataclass
class Enrolment:
    id: int | None  # None until flushed
    status: int
    timestart: int
    timeend: int


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@dataclass
class Pending:
    """Changes to one table: new rows by key, updated and deleted ids."""

    new: dict[Any, dict[str, Any]] = field(default_factory=dict)
    updated: dict[int, dict[str, Any]] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)

    def delete(self, key: Any, row_id: int | None) -> None:
        if row_id is None:
            del self.new[key]
        else:
            self.updated.pop(row_id, None)
            self.deleted.add(row_id)


class SiteState:
    """Lookups kept for a whole control file (courses, roles, groups, enrol instances)
    and per-batch state of the (user, course) pairs the batch names."""

    def __init__(
        self, conn: Connection, tables: MoodleTables, now: int, *, course_key: str, user_key: str
    ) -> None:
        self.conn = conn
        self.t = tables
        self.now = now
        self.course_key = course_key
        self.user_key = user_key
        self.roles: dict[str, int] = {
            r.shortname: r.id
            for r in conn.execute(select(tables.role.c.id, tables.role.c.shortname))
        }
        self._courses: dict[str, Course | str] = {}
        self._instances: dict[tuple[int, str], tuple[int, int] | None] = {}
        self._groups: dict[int, dict[str, list[int]]] = {}
        self._group_idnumbers: dict[int, dict[str, list[int]]] = {}
        self.users: dict[str, int | str] = {}
        self.reset_batch()

    # -- lookups ---------------------------------------------------------------------

    def _match(self, table: Any, column: str, values: Iterable[str]) -> dict[str, list[int]]:
        """value -> ids of rows whose `column` equals it (ids as ints for column `id`)."""
        col = table.c[column]
        wanted = sorted(set(values))
        if column == "id":
            wanted = [v for v in wanted if v.isdigit()]
        found: dict[str, list[int]] = {}
        extra = []
        if table is self.t.user:
            extra = [table.c.deleted == 0]
        elif table is self.t.course:
            extra = [table.c.category != 0]  # never the site's front page course
        for part in chunks(wanted):
            keys: Sequence[Any] = [int(v) for v in part] if column == "id" else part
            rows = self.conn.execute(select(table.c.id, col).where(col.in_(keys), *extra))
            for row_id, value in rows:
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
            rows = self.conn.execute(
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
        key = (course.id, plugin)
        if key not in self._instances:
            e = self.t.enrol.c
            row = self.conn.execute(
                select(e.id, e.status)
                .where(e.courseid == course.id, e.enrol == plugin)
                .order_by(e.sortorder, e.id)
                .limit(1)
            ).first()
            self._instances[key] = (row[0], row[1]) if row else None
        return self._instances[key]

    def create_manual_instance(self, course: Course) -> int:
        """Moodle's enrol_manual add_default_instance, with its defaults."""
        e = self.t.enrol
        sortorder = self.conn.execute(
            select(func.coalesce(func.max(e.c.sortorder), -1) + 1).where(e.c.courseid == course.id)
        ).scalar_one()
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
        self._instances[(course.id, "manual")] = (enrol_id, 0)
        return enrol_id

    def _load_groups(self, course_id: int) -> None:
        if course_id in self._groups:
            return
        g = self.t.groups.c
        by_name: dict[str, list[int]] = {}
        by_idnumber: dict[str, list[int]] = {}
        for gid, name, idnumber in self.conn.execute(
            select(g.id, g.name, g.idnumber).where(g.courseid == course_id)
        ):
            by_name.setdefault(name, []).append(gid)
            if idnumber:
                by_idnumber.setdefault(idnumber, []).append(gid)
        self._groups[course_id] = by_name
        self._group_idnumbers[course_id] = by_idnumber

    def group(self, course: Course, value: str, key: str = "name") -> int | None:
        """The id of the course's group whose `key` (name or idnumber) is `value`."""
        self._load_groups(course.id)
        index = self._groups if key == "name" else self._group_idnumbers
        ids = index[course.id].get(value, [])
        if len(ids) > 1:
            raise LineFailed(f"{len(ids)} groups have {key} {value!r} in course {course.key}")
        return ids[0] if ids else None

    def create_group(self, course: Course, name: str) -> int:
        result = self.conn.execute(
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
        return gid

    # -- per-batch state ---------------------------------------------------------------

    def reset_batch(self) -> None:
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
        self.touched_groups: set[int] = set()
        self.users.clear()

    def prepare(self, lines: Sequence[DataLine], *, course_column: str, user_column: str) -> None:
        """Resolve a batch's users and courses, then load the state they share."""
        rows = [line.values for line in lines if line.values is not None]
        self.resolve_users(r[user_column] for r in rows)
        self.resolve_courses(r[course_column] for r in rows)
        users = [u for r in rows if isinstance(u := self.users.get(r[user_column]), int)]
        courses = [c for r in rows if isinstance(c := self._courses.get(r[course_column]), Course)]
        self.load(users, courses)

    def load(self, user_ids: Iterable[int], courses: Iterable[Course]) -> None:
        """Enrolments, role assignments and memberships of these users in these courses."""
        users = sorted(set(user_ids))
        course_list = {c.id: c for c in courses}
        if not users or not course_list:
            return
        course_ids = sorted(course_list)
        contexts = sorted({c.context_id for c in course_list.values()})
        t = self.t
        ue, e = t.user_enrolments.c, t.enrol.c
        ra, gm, g = t.role_assignments.c, t.groups_members.c, t.groups.c
        for cpart in chunks(course_ids, 400):
            for upart in chunks(users, 400):
                rows = self.conn.execute(
                    select(
                        ue.id,
                        ue.enrolid,
                        ue.userid,
                        ue.status,
                        ue.timestart,
                        ue.timeend,
                        e.courseid,
                    )
                    .join_from(t.user_enrolments, t.enrol, ue.enrolid == e.id)
                    .where(e.courseid.in_(cpart), ue.userid.in_(upart))
                )
                for uid, enrolid, userid, status, start, end, courseid in rows:
                    self.enrolments[(enrolid, userid)] = Enrolment(uid, status, start, end)
                    self.course_enrolments.setdefault((courseid, userid), set()).add(enrolid)
                memberships = self.conn.execute(
                    select(gm.id, gm.groupid, gm.userid, g.courseid)
                    .join_from(t.groups_members, t.groups, gm.groupid == g.id)
                    .where(g.courseid.in_(cpart), gm.userid.in_(upart))
                )
                for mid, groupid, userid, courseid in memberships:
                    self.members.setdefault((courseid, userid), {})[groupid] = mid
        for xpart in chunks(contexts, 400):
            for upart in chunks(users, 400):
                assignments = self.conn.execute(
                    select(
                        ra.id, ra.contextid, ra.userid, ra.roleid, ra.component, ra.itemid
                    ).where(ra.contextid.in_(xpart), ra.userid.in_(upart))
                )
                for aid, contextid, userid, roleid, component, itemid in assignments:
                    self.roles_of.setdefault((contextid, userid), {})[
                        (roleid, component, itemid)
                    ] = aid

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
        if current.id is None:
            self.ue.new[key].update(values)
        else:
            self.ue.updated[current.id] = values
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
        """Write the batch's net changes: deletes, then updates, then inserts."""
        t = self.t
        for table, pending in (
            (t.groups_members, self.gm),
            (t.role_assignments, self.ra),
            (t.user_enrolments, self.ue),
        ):
            for part in chunks(sorted(pending.deleted)):
                self.conn.execute(table.delete().where(table.c.id.in_(part)))
        if self.ue.updated:
            ue = t.user_enrolments
            self.conn.execute(
                ue.update()
                .where(ue.c.id == bindparam("_id"))
                .values(
                    status=bindparam("_status"),
                    timestart=bindparam("_start"),
                    timeend=bindparam("_end"),
                    timemodified=bindparam("_modified"),
                ),
                [
                    {
                        "_id": i,
                        "_status": v["status"],
                        "_start": v["timestart"],
                        "_end": v["timeend"],
                        "_modified": v["timemodified"],
                    }
                    for i, v in self.ue.updated.items()
                ],
            )
        for table, pending in (
            (t.user_enrolments, self.ue),
            (t.role_assignments, self.ra),
            (t.groups_members, self.gm),
        ):
            if pending.new:
                self.conn.execute(table.insert(), list(pending.new.values()))
        groups = t.groups
        for part in chunks(sorted(self.touched_groups)):
            self.conn.execute(
                groups.update().where(groups.c.id.in_(part)).values(timemodified=self.now)
            )
        self.reset_batch()
