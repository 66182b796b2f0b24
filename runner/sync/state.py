"""The part of Moodle's state a batch of control-file lines touches, and its changes.

A batch of lines is applied in three moves: load (a few set-based SELECTs for every user
and course the batch names: runner.sync.lookup, then their enrolments, roles and
memberships), simulate (each line in order against the loaded state, in memory, so a line
sees what the lines before it did), and flush (a few executemany INSERT/UPDATE/DELETE:
runner.sync.writes). No per-line round trip.

Batch N's writes run in a second thread while batch N+1 is simulated: for the (user,
course) pairs batch N touched, batch N+1 takes batch N's state (the database with batch
N's changes) instead of the database's.

A preview (`withheld`) runs the same code; each batch's changes are kept in memory
(runner.step.preview) instead of written, and every later load reads them over the
database's rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection

from runner.db.raw import Raw
from runner.db.tables import MoodleTables
from runner.step.preview import Withheld
from runner.sync.base import Course, Enrolment, P, Part, Tally
from runner.sync.below import RolesBelow
from runner.sync.journal import FileJournal
from runner.sync.lookup import Lookups
from runner.sync.owners import Owners
from runner.sync.preview_state import BatchState, over_withheld, withhold
from runner.sync.reader import DataLine
from runner.sync.writes import Changes, Writes, chunks, mark_users_dirty, site_admin

ENROL_ACTIVE, ENROL_SUSPENDED = 0, 1


class SiteState(Owners):
    """Lookups kept for a whole control file (`lookups`: courses, roles, groups, enrol
    instances) and per-batch state of the (user, course) pairs the batch names."""

    def __init__(
        self,
        conn: Connection,
        tables: MoodleTables,
        now: int,
        *,
        course_key: str,
        user_key: str,
        membership_component: str = "",
        modifier: int | str = 0,
        withheld: Withheld | None = None,
        guarded: Iterable[str] = (),
    ) -> None:
        self.raw = Raw(conn)
        #: a preview's changes, kept instead of written (None: a real run)
        self.withheld = withheld
        self.t = tables
        self.now = now
        self.writes = Writes(conn, self.raw, tables)
        #: the changes decided, told to the run's change journal (runner.sync.journal)
        self.journal = FileJournal()
        self.lookups = Lookups(
            conn,
            self.raw,
            tables,
            now,
            course_key=course_key,
            user_key=user_key,
            wait=self.writes.wait,
            withheld=withheld,
            journal=self.journal,
        )
        #: groups whose members changed: their timemodified is set once, by `finish`
        self.touched_groups: set[int] = set()
        #: users whose enrolments, roles or groups changed: marked dirty for Moodle's
        #: open sessions by `finish`, as Moodle's mark_user_dirty does
        self.dirty: set[int] = set()
        #: the component of the group memberships this sync writes, and the only one
        #: it removes ('' by default, as Moodle's groups_add_member)
        self.component = membership_component
        #: (group id, user id) -> (component, itemid) of the loaded memberships another
        #: plugin owns (enrol_cohort...): kept, except by the plugin's own unenrolment
        #: and by the last unenrolment (as Moodle's unenrol_user)
        self.owners: dict[tuple[int, int], tuple[str, int]] = {}
        #: the user id written as modifierid of the enrolments and roles the sync makes
        self.modifier = site_admin(conn, tables) if modifier == "admin" else int(modifier)
        self.pairs: set[tuple[int, int, int]] = set()
        #: state a command keeps beside the enrolments (runner.sync.users.state...), by kind
        self.parts: dict[type[Any], Part] = {}
        self.tally = Tally(frozenset(guarded))  # rows added and removed, by scope
        #: role assignment id -> its copies another writer made (no unique key): they go with it
        self.role_copies: dict[int, list[int]] = {}
        #: the batch's users' roles below its courses, which a last unenrolment takes
        self.below = RolesBelow(self.raw, tables, self.writes.wait)
        self.reset_batch()

    def part(self, kind: type[P]) -> P:
        """The file's state of this kind, made on first use (`kind(self)`)."""
        found = self.parts.get(kind)
        if found is None:
            found = self.parts[kind] = kind(self)  # type: ignore[call-arg]
        assert isinstance(found, kind)
        return found

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
        self.changes = Changes()

    def prepare(
        self,
        lines: Sequence[DataLine],
        *,
        course_column: str,
        user_column: str,
        leaving: bool = False,
    ) -> None:
        """A batch's users and courses, the state they share (`leaving`: roles below)."""
        rows = [line.values for line in lines if line.values is not None]
        self.prepare_pairs(self.lookups.pairs(rows, course_column, user_column), leaving)

    def prepare_pairs(self, pairs: set[tuple[int, int, int]], leaving: bool = False) -> None:
        """The state of these (course id, context id, user id) for a batch."""
        self.pairs = pairs
        if self._previous is not None:
            pairs = pairs - self._carry(pairs)
        self.load(pairs)
        self.below.load({user for _, _, user in self.pairs} if leaving else set())
        self.writes.write_ready()  # the previous batch's writes, while this one runs

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
        self.writes.wait()
        t = self.t
        enrol_keys = sorted(
            (eid, user) for course, _, user in pairs for _, eid, _, _ in self.lookups.enrols[course]
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
                course = self.lookups.enrol_course[enrolid]
                self.course_enrolments.setdefault((course, userid), set()).add(enrolid)
        role_keys = sorted({(user, context) for _, context, user in pairs})
        for part in chunks(role_keys, self.raw.pairs):
            assignments = self.raw.select_keys(
                t.role_assignments,
                ("id", "contextid", "userid", "roleid", "component", "itemid"),
                ("userid", "contextid"),
                part,
            )
            for aid, contextid, userid, roleid, component, itemid in sorted(assignments):
                held = self.roles_of.setdefault((contextid, userid), {})
                first = held.setdefault((roleid, component, itemid), aid)  # the lowest id
                if first is not None and first != aid:
                    self.role_copies.setdefault(first, []).append(aid)
        member_keys = sorted(
            (user, gid)
            for course, _, user in pairs
            for gids in self.lookups.groups[course].values()
            for gid in gids
        )
        for part in chunks(member_keys, self.raw.pairs):
            members = self.raw.select_keys(
                t.groups_members,
                ("id", "groupid", "userid", "component", "itemid"),
                ("userid", "groupid"),
                part,
            )
            for mid, groupid, userid, component, itemid in members:
                course = self.lookups.group_course[groupid]
                self.members.setdefault((course, userid), {})[groupid] = mid
                if component != self.component:
                    self.owners[(groupid, userid)] = (component, itemid)
        if self.withheld is not None:
            over_withheld(self._batch(), pairs)

    def _batch(self) -> BatchState:
        """This batch's state, for a preview's keeping (runner.sync.preview_state)."""
        assert self.withheld is not None
        return BatchState(
            self.withheld, self.enrolments, self.course_enrolments, self.roles_of, self.members
        )

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
                "modifierid": self.modifier,
                "timecreated": self.now,
                "timemodified": self.now,
            }
            self.changes.ue.new[key] = row
            self.journal.enrolment_created(course, row)
            self.enrolments[key] = Enrolment(None, row["status"], row["timestart"], row["timeend"])
            self.course_enrolments.setdefault((course.id, userid), set()).add(enrolid)
            self.dirty.add(userid)
            self.tally.add("course", course.id, key)
            return True
        wanted = Enrolment(
            current.id,
            current.status if status is None else status,
            current.timestart if timestart is None else timestart,
            current.timeend if timeend is None else timeend,
        )
        if wanted == current:
            return False
        if wanted.status == ENROL_SUSPENDED != current.status:
            self.tally.took("suspend", course.id, key, course.key)
        self.enrolments[key] = wanted
        values = {
            "status": wanted.status,
            "timestart": wanted.timestart,
            "timeend": wanted.timeend,
            "timemodified": self.now,
        }
        self.changes.ue.update(key, current.id, values)
        self.journal.enrolment_updated(course, key, current, wanted)
        self.dirty.add(userid)
        return True

    def remove_enrolment(self, course: Course, enrolid: int, userid: int) -> bool:
        key = (enrolid, userid)
        current = self.enrolments.pop(key, None)
        if current is None:
            return False
        self.changes.ue.delete(key, current.id)
        self.journal.enrolment_deleted(course, key, current)
        self.course_enrolments[(course.id, userid)].discard(enrolid)
        self.dirty.add(userid)
        self.tally.remove("unenrol", course.id, key, course.key)
        return True

    def leave(self, course: Course, userid: int) -> None:
        """The user's last enrolment in the course went: what Moodle's unenrol_user
        removes besides (roles below the course, each journaled, and the course access
        time) goes too."""
        self.changes.left.add((userid, course.context_id, course.id))
        self.below.take(course, userid, self.journal)
        self.journal.course_left(course, userid)
        self.dirty.add(userid)

    def roles_in(self, course: Course, userid: int) -> dict[tuple[int, str, int], int | None]:
        return self.roles_of.setdefault((course.context_id, userid), {})

    def assign(self, course: Course, userid: int, role: tuple[int, str, int]) -> bool:
        held = self.roles_in(course, userid)
        if role in held:
            return False
        held[role] = None
        self.changes.ra.new[(course.context_id, userid, role)] = {
            "roleid": role[0],
            "contextid": course.context_id,
            "userid": userid,
            "component": role[1],
            "itemid": role[2],
            "timemodified": self.now,
            "modifierid": self.modifier,
            "sortorder": 0,
        }
        self.journal.role_assigned(course, userid, role)
        self.dirty.add(userid)
        return True

    def unassign(self, course: Course, userid: int, role: tuple[int, str, int]) -> bool:
        held = self.roles_in(course, userid)
        if role not in held:
            return False
        aid = held.pop(role)
        self.journal.role_unassigned(course, userid, role, aid, self.role_copies.get(aid or 0, []))
        self.changes.ra.delete((course.context_id, userid, role), aid)
        self.changes.ra.deleted.update(self.role_copies.pop(aid or 0, ()))
        self.dirty.add(userid)
        return True

    # -- flush ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Ends the batch: its changes are written once the next batch has looked up
        its own state (`prepare`), or by `finish`. A preview keeps them instead."""
        for kept in self.parts.values():
            kept.flush()
        if self.parts:  # its command loads no pairs (`prepare`): nothing else to write
            self.writes.write_ready()
        if self.withheld is not None:
            withhold(self._batch(), self.pairs)
        else:
            self.writes.end_batch(self.changes)
        self.reset_batch()

    def finish(self) -> None:
        """After the last batch: its changes, then the touched groups' timemodified,
        once per group (an update per batch would rewrite the same rows again and
        again), and their courses' cache revision where Moodle resets open course
        pages on a membership change. A preview writes nothing."""
        for kept in self.parts.values():
            kept.finish()
        if self.withheld is not None:
            self.touched_groups.clear()
            self.dirty.clear()
            return
        self.checkpoint()

    def checkpoint(self) -> None:
        """Everything the batches so far decided written (before a chunk's commit: the
        batch's writes are otherwise pipelined into the next), with the touched groups'
        timemodified and the users' dirty flags."""
        assert self.withheld is None
        self.writes.write_ready()
        self.writes.wait()
        self.writes.touch_groups(sorted(self.touched_groups), self.now)
        self.touched_groups.clear()
        mark_users_dirty(self.raw, self.t, sorted(self.dirty), self.now)
        self.dirty.clear()

    def close(self) -> None:
        """Waits for the writer (a failing sync must not roll back under it)."""
        self.writes.close()
