"""A user's roles in the contexts below a course (activities, blocks), which Moodle's
unenrol_user takes with their last enrolment in the course (role_unassign_all with
subcontexts, any component): loaded for each batch that may unenrol, so that each one
is journaled (runner.sync.journal) as the last unenrolment takes it. The rows
themselves are deleted set-based with the batch (runner.sync.writes, `left`)."""

from __future__ import annotations

from collections.abc import Callable

from runner.db.raw import Raw
from runner.db.tables import MoodleTables
from runner.sync.base import Course
from runner.sync.journal import FileJournal
from runner.sync.writes import chunks

CONTEXT_COURSE = 50
#: a role assignment: its id, context id, role id, component, itemid
Below = tuple[int, int, int, str, int]


class RolesBelow:
    def __init__(self, raw: Raw, tables: MoodleTables, wait: Callable[[], None]) -> None:
        self.raw, self.t, self.wait = raw, tables, wait
        #: user id -> (context path, assignment) of the batch's users
        self.by_user: dict[int, list[tuple[str, Below]]] = {}
        #: the ids of those a last unenrolment of this file took (the database keeps
        #: them until the batch is written, and a preview never writes them)
        self.gone: set[int] = set()

    def load(self, users: set[int]) -> None:
        """These users' roles below any course: from their few role assignments
        (indexed by user), each one's context by id. Waits for the batch writer."""
        self.by_user = {}
        if not users:
            return
        self.wait()
        raw, t = self.raw, self.t
        q = raw.quote
        for part in chunks(sorted(users), raw.chunk):
            where, params = raw.where_in(t.role_assignments, "userid", part)
            rows = raw.conn.exec_driver_sql(
                f"SELECT r.{q('userid')}, c.{q('path')}, r.{q('id')}, r.{q('contextid')},"
                f" r.{q('roleid')}, r.{q('component')}, r.{q('itemid')}"
                f" FROM {raw.name(t.role_assignments)} r JOIN {raw.name(t.context)} c"
                f" ON c.{q('id')} = r.{q('contextid')}"
                f" WHERE r.{where} AND c.{q('contextlevel')} > {CONTEXT_COURSE}",
                params,
            )
            for userid, path, aid, contextid, roleid, component, itemid in rows:
                if aid not in self.gone:
                    held = (aid, contextid, roleid, component or "", itemid)
                    self.by_user.setdefault(userid, []).append((str(path), held))

    def take(self, course: Course, userid: int, journal: FileJournal) -> None:
        """The user's roles below this course, journaled (each once in a file)."""
        inside = f"/{course.context_id}/"
        for path, (aid, contextid, roleid, component, itemid) in self.by_user.get(userid, ()):
            if inside in path and aid not in self.gone:
                self.gone.add(aid)
                role = (roleid, component, itemid)
                journal.role_unassigned(course, userid, role, aid, [], contextid)
