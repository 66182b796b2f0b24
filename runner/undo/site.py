"""The site's rows an undo needs to name what the journal names by id: courses by
shortname, users by username, roles by shortname, groups by name, groupings and
cohorts by idnumber (reads only)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_CHUNK = 2000


def _chunks(ids: Iterable[int]) -> Iterable[list[int]]:
    values = sorted({int(i) for i in ids})
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


@dataclass
class Site:
    """The rows read, by id; a missing id is a row gone since the run."""

    courses: dict[int, str] = field(default_factory=dict)
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    usernames: dict[str, dict[str, Any]] = field(default_factory=dict)
    roles: dict[int, str] = field(default_factory=dict)
    #: enrol instance id: (courseid, plugin)
    instances: dict[int, tuple[int, str]] = field(default_factory=dict)
    #: context id: (contextlevel, instanceid)
    contexts: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: group id: (courseid, name); how many groups of a course have each name; its
    #: idnumber
    groups: dict[int, tuple[int, str]] = field(default_factory=dict)
    names: dict[tuple[int, str], int] = field(default_factory=dict)
    group_idnumbers: dict[int, str] = field(default_factory=dict)
    groupings: dict[int, dict[str, Any]] = field(default_factory=dict)
    cohorts: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: (courseid, userid): their enrolments (enrolid, plugin, status, timestart, timeend)
    enrolled: dict[tuple[int, int], list[tuple[int, str, int, int, int]]] = field(
        default_factory=dict
    )
    #: (contextid, userid): their roles (roleid, component, itemid)
    assigned: dict[tuple[int, int], set[tuple[int, str, int]]] = field(default_factory=dict)

    def name_group(self, gid: int, course: int, name: str, idnumber: str) -> None:
        """Group `gid` is `name` once the undo's groups file is applied (renamed back, or
        made again under a new id that the journal's `gid` stands for)."""
        old = self.groups.get(gid)
        if old is not None:
            self.names[old] -= 1
        self.groups[gid] = (course, name)
        self.names[(course, name)] = self.names.get((course, name), 0) + 1
        self.group_idnumbers[gid] = idnumber

    def user(self, userid: int) -> str | None:
        row = self.users.get(userid)
        return None if row is None or row["deleted"] else str(row["username"])


def read_site(engine: Any, t: Any, want: dict[str, set[Any]]) -> Site:
    """The rows of `want` (by table: ids; `usernames`: names; `people`: (course, user))."""
    from sqlalchemy import select, tuple_

    site = Site()
    with engine.connect() as conn:

        def rows(table: Any, column: Any, keys: Iterable[Any], *cols: Any) -> Iterable[Any]:
            for chunk in _chunks(keys):
                yield from conn.execute(select(*cols).where(column.in_(chunk))).mappings()

        g = t.groups
        columns = (g.c.id, g.c.courseid, g.c.name, g.c.idnumber)
        by_id: dict[int, Any] = {
            int(r["id"]): r
            for table_rows in (
                rows(g, g.c.courseid, want["group_courses"], *columns),
                rows(g, g.c.id, want["group_ids"], *columns),
            )
            for r in table_rows
        }
        for gid, r in sorted(by_id.items()):
            site.name_group(gid, int(r["courseid"]), str(r["name"]), str(r["idnumber"] or ""))
        gg = t.groupings
        for r in rows(
            gg, gg.c.id, want["groupings"], gg.c.id, gg.c.courseid, gg.c.name, gg.c.idnumber
        ):
            site.groupings[int(r["id"])] = dict(r)
        courses = {*want["courses"], *(c for c, _n in site.groups.values())}
        courses.update(int(r["courseid"]) for r in site.groupings.values())
        for r in rows(t.course, t.course.c.id, courses, t.course.c.id, t.course.c.shortname):
            site.courses[int(r["id"])] = str(r["shortname"])
        for r in rows(t.role, t.role.c.id, want["roles"], t.role.c.id, t.role.c.shortname):
            site.roles[int(r["id"])] = str(r["shortname"])
        e = t.enrol
        for r in rows(e, e.c.id, want["instances"], e.c.id, e.c.courseid, e.c.enrol):
            site.instances[int(r["id"])] = (int(r["courseid"]), str(r["enrol"]))
        x = t.context
        for r in rows(x, x.c.id, want["contexts"], x.c.id, x.c.contextlevel, x.c.instanceid):
            site.contexts[int(r["id"])] = (int(r["contextlevel"]), int(r["instanceid"]))
        ch = t.cohort
        cols = (ch.c.id, ch.c.name, ch.c.idnumber, ch.c.contextid, ch.c.component, ch.c.description)
        for r in rows(ch, ch.c.id, want["cohorts"], *cols):
            site.cohorts[int(r["id"])] = dict(r)
        u = t.user
        for r in rows(u, u.c.id, want["users"], u):
            site.users[int(r["id"])] = dict(r)
        for name in sorted(want["usernames"]):
            for r in conn.execute(select(u).where(u.c.username == name)).mappings():
                site.usernames[name] = dict(r)
                site.users[int(r["id"])] = dict(r)
        people = sorted(want["people"])
        ue = t.user_enrolments
        for i in range(0, len(people), 500):
            chunk = people[i : i + 500]
            query = (
                select(e.c.courseid, ue.c.userid, e.c.id, e.c.enrol, ue.c.status)
                .add_columns(ue.c.timestart, ue.c.timeend)
                .join(e, e.c.id == ue.c.enrolid)
                .where(tuple_(e.c.courseid, ue.c.userid).in_(chunk))
            )
            for r in conn.execute(query):
                found = (int(r[2]), str(r[3]), int(r[4]), int(r[5]), int(r[6]))
                site.enrolled.setdefault((int(r[0]), int(r[1])), []).append(found)
        ra = t.role_assignments
        pairs = sorted(want["assignments"])
        for i in range(0, len(pairs), 500):
            chunk = pairs[i : i + 500]
            query = select(ra.c.contextid, ra.c.userid, ra.c.roleid, ra.c.component, ra.c.itemid)
            for r in conn.execute(query.where(tuple_(ra.c.contextid, ra.c.userid).in_(chunk))):
                pair = (int(r[0]), int(r[1]))
                site.assigned.setdefault(pair, set()).add((int(r[2]), str(r[3]), int(r[4])))
    return site
