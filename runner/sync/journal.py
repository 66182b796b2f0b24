"""What a control file's lines change, row by row, for the run's change journal
(runner.record.journal).

The simulation (runner.sync.state) tells each change it decides, as it decides it; a
preview runs the same simulation, so its journal is the run's by construction. Each
change carries the control file's line being applied (`line`, set by runner.sync.apply
before each line). A row the run creates has no id (the inserts are set-based: its
natural key, Moodle's unique index, names it); a preview's rows it would have created
have ids below zero, which are no row's: they too are shown as none.

A sync of a million lines tells a few million changes: each is formatted straight to
its compact JSON text (the values are integers, the few strings JSON-quoted once), with
no dictionary in between. Measured on 200,000 enrolment lines (475,000 changes, SQLite):
a dictionary and `json.dumps` per change made the sync 15 to 25% slower; this, within
the runs' noise.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from runner.core.jsontext import compact
from runner.record.journal import Span, Spool
from runner.sync.base import Course, Enrolment

#: what a last unenrolment deletes besides, which the journal does not list row by row
#: (Moodle triggers no event for it, and no control file gives it back)
LEFT_UNLISTED = ["user_lastaccess"]
_UNLISTED = json.dumps(LEFT_UNLISTED, separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=256)
def text(value: str) -> str:
    """A string as JSON (a file's name, a component: few of them)."""
    return json.dumps(value, ensure_ascii=False)


def _id(row_id: int | None) -> str:
    return str(row_id) if row_id is not None and row_id > 0 else "null"


def _state(e: Enrolment) -> str:
    return f'"status":{e.status},"timestart":{e.timestart},"timeend":{e.timeend}'


class FileJournal:
    """The changes of one control file's lines, to its spool (None: not journaled)."""

    def __init__(self, spool: Spool | None = None, file: str = "") -> None:
        self.spool = spool
        self.file = text(file)
        #: the control file's line being applied
        self.line = 0

    def use(self, other: FileJournal) -> None:
        """Tell this file's changes to `other`'s spool (the state's journal is made
        before the file's spool: its lookups hold it)."""
        self.spool, self.file = other.spool, other.file

    def _add(self, kind: str, course: Course | int | None, fields: str) -> str:
        """The change's line (its text; "" when not journaled)."""
        spool = self.spool
        if spool is None:
            return ""
        cid = course.id if isinstance(course, Course) else course
        head = f'{{"seq":{spool.first + spool.count},"kind":"{kind}","file":{self.file}'
        # line 0: a snapshot's change to a row its file does not list (no line made it)
        where = f'"line":{self.line or "null"},"courseid":{"null" if cid is None else cid}'
        text = f"{head},{where},{fields}}}"
        spool.add(kind, text)
        return text

    def taken(self, kind: str, courseid: int | None, fields: str, cause: str) -> None:
        """A row a deletion took with it (`cause`: the deletion's kind, e.g.
        user_deleted), told before the deletion (runner.sync.cascade)."""
        self._add(kind, courseid, f'{fields},"with":{text(cause)}')

    def flush(self) -> None:
        """The batch's changes to the spool."""
        if self.spool is not None:
            self.spool.flush()

    def span(self) -> Span | None:
        """The journal lines of the file's changes (None: none)."""
        return self.spool.span() if self.spool is not None else None

    def enrolment_created(self, course: Course, row: dict[str, int]) -> None:
        self._add(
            "user_enrolment_created",
            course,
            f'"enrolid":{row["enrolid"]},"userid":{row["userid"]},"status":{row["status"]},'
            f'"timestart":{row["timestart"]},"timeend":{row["timeend"]}',
        )

    def enrolment_updated(
        self, course: Course, key: tuple[int, int], before: Enrolment, after: Enrolment
    ) -> None:
        self._add(
            "user_enrolment_updated",
            course,
            f'"id":{_id(before.id)},"enrolid":{key[0]},"userid":{key[1]},'
            f'"before":{{{_state(before)}}},"after":{{{_state(after)}}}',
        )

    def enrolment_deleted(self, course: Course, key: tuple[int, int], row: Enrolment) -> None:
        self._add(
            "user_enrolment_deleted",
            course,
            f'"id":{_id(row.id)},"enrolid":{key[0]},"userid":{key[1]},{_state(row)}',
        )

    def role_assigned(self, course: Course, userid: int, role: tuple[int, str, int]) -> None:
        self._add(
            "role_assigned",
            course,
            f'"contextid":{course.context_id},"userid":{userid},"roleid":{role[0]},'
            f'"component":{text(role[1])},"itemid":{role[2]}',
        )

    def role_unassigned(
        self,
        course: Course,
        userid: int,
        role: tuple[int, str, int],
        aid: int | None,
        copies: list[int],
        contextid: int | None = None,
    ) -> None:
        """A role unassigned in the course's context (or `contextid`, one below it)."""
        more = f',"copies":[{",".join(map(str, sorted(copies)))}]' if copies else ""
        self._add(
            "role_unassigned",
            course,
            f'"id":{_id(aid)},"contextid":{contextid or course.context_id},"userid":{userid},'
            f'"roleid":{role[0]},"component":{text(role[1])},"itemid":{role[2]}{more}',
        )

    def member_added(self, course: Course, userid: int, groupid: int, component: str) -> None:
        self._add(
            "group_member_added",
            course,
            f'"groupid":{groupid},"userid":{userid},"component":{text(component)},"itemid":0',
        )

    def member_removed(
        self, course: Course, userid: int, groupid: int, mid: int | None, owner: tuple[str, int]
    ) -> None:
        """A membership removed (`owner`: its component and itemid)."""
        self._add(
            "group_member_removed",
            course,
            f'"id":{_id(mid)},"groupid":{groupid},"userid":{userid},'
            f'"component":{text(owner[0])},"itemid":{owner[1]}',
        )

    def course_left(self, course: Course, userid: int) -> None:
        self._add(
            "course_left",
            course,
            f'"contextid":{course.context_id},"userid":{userid},"not_listed":{_UNLISTED}',
        )

    def enrol_instance_created(self, course: Course, enrol_id: int, plugin: str) -> None:
        self._add("enrol_instance_created", course, f'"id":{_id(enrol_id)},"enrol":{text(plugin)}')

    def group_created(
        self, course: Course, kind: str, row_id: int, name: str, idnumber: str
    ) -> None:
        """A group or grouping (`kind`: group, grouping) made by a line."""
        self._add(
            f"{kind}_created",
            course,
            f'"id":{_id(row_id)},"name":{text(name)},"idnumber":{text(idnumber)}',
        )

    def group_updated(
        self,
        courseid: int | None,
        kind: str,
        row_id: int,
        changes: dict[str, object],
        before: dict[str, object],
    ) -> None:
        """A group's or grouping's columns a line changed: their values before, after."""
        self._add(
            f"{kind}_updated",
            courseid,
            f'"id":{_id(row_id)},"before":{compact(before)},"after":{compact(changes)}',
        )

    def grouping_group_assigned(self, courseid: int | None, grouping: int, group: int) -> None:
        self._add(
            "grouping_group_assigned",
            courseid,
            f'"groupingid":{_id(grouping)},"groupid":{_id(group)}',
        )

    def cohort(
        self,
        kind: str,
        row: dict[str, object],
        changes: dict[str, object] | None = None,
        before: dict[str, object] | None = None,
    ) -> None:
        """A cohort created, updated (the columns changed: before, after) or deleted (the
        row as it was; its members go with it, as Moodle's cohort_delete_cohort deletes
        them, unlisted)."""
        fields = f'"id":{_id(int(str(row["id"])))},"contextid":{row["contextid"]}'
        fields += f',"name":{text(str(row["name"]))},"idnumber":{compact(row["idnumber"])}'
        if changes is not None:
            fields += f',"before":{compact(before or {})},"after":{compact(changes)}'
        self._add(kind, None, fields)

    def cohort_member(self, kind: str, cohort: int, userid: int, rid: int | None = None) -> None:
        """A user added to or removed from a cohort (`rid`: the removed row's id)."""
        row_id = f'"id":{_id(rid)},' if kind == "cohort_member_removed" else ""
        self._add(kind, None, f'{row_id}"cohortid":{_id(cohort)},"userid":{userid}')

    def user(
        self,
        kind: str,
        row_id: int | None,
        values: dict[str, Any],
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        password_set: bool | None = None,
    ) -> None:
        """A user created, updated (the columns changed: before, after) or deleted (what
        Moodle's user_deleted event keeps of the row: its username, e-mail, idnumber,
        picture, mnethostid). A password is never journaled: `password_changed` says
        the column changed, `password_set` that the line gave one (not the 'not
        cached' of an auth keeping no password in Moodle)."""
        keys = {k: values.get(k) for k in USER_KEYS}
        fields = f'"id":{_id(row_id)},"user":{compact(keys)}'
        if before is not None and after is not None:
            secret = "password" in after
            fields += f',"before":{compact(_public(before))},"after":{compact(_public(after))}'
            fields += f',"password_changed":{"true" if secret else "false"}'
        if password_set is not None:
            fields += f',"password_set":{"true" if password_set else "false"}'
        self._add(kind, None, fields)


#: what the journal tells of a user besides the columns a line changed
USER_KEYS = ("username", "mnethostid", "idnumber", "email", "auth", "picture", "suspended")


def _public(columns: dict[str, Any]) -> dict[str, Any]:
    return {c: v for c, v in columns.items() if c != "password"}
