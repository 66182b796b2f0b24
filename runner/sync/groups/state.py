"""The groupings of the courses a groups file names, the groups' and groupings'
changes, and how they are written (as Moodle's groups_create_group,
groups_update_group, groups_create_grouping, groups_update_grouping and
groups_assign_grouping write them).

Groups are the enrolment lookups' (runner.sync.lookup: loaded per course, created at
once since later lines need their ids); groupings and their links are loaded here per
course. Updates and links are written at the end of the batch. A preview keeps them in
runner.step.preview.Withheld (group_rows, groupings, grouping_rows, grouping_links).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from runner.core.text import quoted
from runner.sync.base import Course
from runner.sync.part import BatchPart, update_rows
from runner.sync.writes import chunks

if TYPE_CHECKING:
    from runner.sync.state import SiteState

FORMAT_HTML = 1


class GroupState(BatchPart):
    def __init__(self, site: SiteState) -> None:
        super().__init__(site)
        #: course id -> {grouping id: [name, idnumber]}
        self.groupings: dict[int, dict[int, list[str]]] = {}
        #: (grouping id, group id) of the loaded courses
        self.links: set[tuple[int, int]] = set()
        #: (table, id) -> the description of a group or grouping (read when a line sets it)
        self.descriptions: dict[tuple[str, int], str] = {}
        self.reset()

    def reset(self) -> None:
        #: (table, id) -> column -> value
        self.updated: dict[tuple[str, int], dict[str, Any]] = {}
        self.current: dict[tuple[str, int], tuple[str, str]] = {}
        self.linked: set[tuple[int, int]] = set()

    def load(self, courses: Iterable[int]) -> None:
        todo = sorted({c for c in courses if c not in self.groupings})
        if not todo:
            return
        self.site.writes.wait()
        g, gg = self.t.groupings.c, self.t.groupings_groups.c
        conn = self.raw.conn
        for cid in todo:
            self.groupings[cid] = {}
        for part in chunks(todo):
            for gid, name, idnumber, cid in conn.execute(
                select(g.id, g.name, g.idnumber, g.courseid).where(g.courseid.in_(part))
            ):
                self.groupings[cid][gid] = [name, idnumber or ""]
        ids = sorted(i for cid in todo for i in self.groupings[cid])
        for part in chunks(ids):
            rows = conn.execute(select(gg.groupingid, gg.groupid).where(gg.groupingid.in_(part)))
            self.links.update((int(a), int(b)) for a, b in rows)
        w = self.withheld
        if w is not None:
            for cid in todo:
                for gid, name, idnumber in w.groupings.get(cid, ()):
                    self.groupings[cid][gid] = [name, idnumber]
                for gid in self.groupings[cid]:
                    if gid in w.grouping_rows:
                        self.groupings[cid][gid] = list(w.grouping_rows[gid])
            self.links.update(pair for pair, linked in w.grouping_links.items() if linked)

    def grouping(self, course: Course, key: str, value: str) -> int | None:
        """The course's grouping whose `key` (name, idnumber) is `value`."""
        self.load([course.id])
        column = 0 if key == "name" else 1
        found = [i for i, row in self.groupings[course.id].items() if row[column] == value]
        if len(found) > 1:  # Moodle refuses that: another writer's
            self.site.lookups.warnings.append(
                f"warning: {len(found)} groupings have {key} {quoted(value)} in course"
                f" {course.key} (ids {', '.join(map(str, sorted(found)))}): the line used"
                " the first"
            )
        return min(found) if found else None

    def create_grouping(self, course: Course, name: str, idnumber: str, description: str) -> int:
        self.load([course.id])
        if self.withheld is not None:
            gid = self.withheld.new_id()
            self.withheld.created(self.withheld.groupings, course.id, (gid, name, idnumber))
        else:
            # unless another writer made a grouping of that name meanwhile: then that one
            values = {
                "courseid": course.id,
                "name": name,
                "idnumber": idnumber,
                "description": description,
                "descriptionformat": FORMAT_HTML,
                "timecreated": self.now,
                "timemodified": self.now,
            }
            gid = self.raw.insert_one(self.t.groupings, values, ("courseid", "name"))
        if gid not in self.groupings[course.id]:  # not another writer's, found
            self.site.journal.group_created(course, "grouping", gid, name, idnumber)
        self.groupings[course.id][gid] = [name, idnumber]
        self.site.lookups.made.add(("groupings", gid))
        return gid

    def description(self, table: str, row_id: int) -> str:
        """The current description of a group or grouping (read once)."""
        key = (table, row_id)
        if key in self.updated and "description" in self.updated[key]:
            return str(self.updated[key]["description"])
        if key not in self.descriptions:
            t = self.t.groups if table == "groups" else self.t.groupings
            value = (
                ""
                if row_id < 0
                else self.raw.conn.execute(select(t.c.description).where(t.c.id == row_id)).scalar()
            )
            self.descriptions[key] = str(value or "")
        return self.descriptions[key]

    def update(
        self,
        table: str,
        row_id: int,
        changes: dict[str, Any],
        final: dict[str, Any],
        before: dict[str, Any],
    ) -> None:
        """Columns of a group or grouping to write (`changes`; `before`: their values
        until then); `final`: its name and idnumber then."""
        name, idnumber = final["name"], final["idnumber"]
        self.updated.setdefault((table, row_id), {}).update(changes)
        self.current[(table, row_id)] = (name, idnumber)
        if table == "groupings":
            course: int | None = self._course_of(row_id)
            assert course is not None
            self.groupings[course][row_id] = [name, idnumber]
            self.site.journal.group_updated(course, "grouping", row_id, changes, before)
        else:
            course = self.site.lookups.group_course.get(row_id)
            self.site.journal.group_updated(course, "group", row_id, changes, before)

    def _course_of(self, grouping: int) -> int | None:
        return next((c for c, rows in self.groupings.items() if grouping in rows), None)

    def link(self, grouping: int, group: int) -> bool:
        pair = (grouping, group)
        if pair in self.links:
            return False
        self.links.add(pair)
        self.linked.add(pair)
        self.site.journal.grouping_group_assigned(self._course_of(grouping), grouping, group)
        return True

    def _withhold(self) -> None:
        w = self.withheld
        assert w is not None
        for (table, row_id), kept in self.current.items():
            w.put(w.group_rows if table == "groups" else w.grouping_rows, row_id, kept)
        for pair in self.linked:
            w.put(w.grouping_links, pair, True)

    def _write(self) -> None:
        raw, t = self.raw, self.t
        for name, table in (("groups", t.groups), ("groupings", t.groupings)):
            changes = {i: c for (kind, i), c in self.updated.items() if kind == name}
            update_rows(raw, table, changes, self.now)
        rows = [(a, b, self.now) for a, b in sorted(self.linked)]
        link = ("groupingid", "groupid")
        raw.run(raw.inserts(t.groupings_groups, (*link, "timeadded"), rows, absent=link))
