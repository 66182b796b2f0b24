"""group_members: tool_sync's group membership file (groupmembers.csv)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import select

from runner.core.text import excerpt, quoted
from runner.sync.base import (
    CHANGED,
    FAILED,
    UNCHANGED,
    Course,
    LineFailed,
    LineResult,
    SyncOptions,
    owned_by,
)
from runner.sync.reader import Columns, DataLine, Header
from runner.sync.snapshot import Listed, missed
from runner.sync.writes import chunks

if TYPE_CHECKING:
    from runner.sync.state import SiteState

COMMANDS = ("add", "del", "shift")
#: mode: snapshot: the groups whose members are acted on at a time
SNAPSHOT_GROUPS = 200


class GroupMembers:
    """Add users to groups, remove them, or move them (groupmembers.csv).

    Columns (header line, any order; `;` by default):
      courseid (required): the course, by `course_key` (idnumber default, shortname, id).
      groupid (required): the group, by `group_key` (idnumber default, or name).
      userid (required): the user, by `user_key` (idnumber default, username, email, id).
      cmd: add (default), del, shift (leave the course's other groups, join this one).

    A user must be enrolled in the course to join one of its groups (as in Moodle);
    groups are not created by this file. A membership another plugin owns (e.g.
    enrol_cohort's) is never removed: del fails on it, shift keeps it and says so.

    Example line: `add;MATH101;MATH101-G1;U0001`

    With `mode: snapshot` the file is the whole truth for the groups it names: its
    lines are adds, and the members of those groups it does not list are removed
    (`missing: remove`) or kept; only the memberships of the step's
    membership_component go (see "Snapshot feeds").
    """

    columns = Columns(("courseid", "groupid", "userid"), ("cmd",))

    def header(self, state: SiteState, header: Header, options: SyncOptions) -> None:
        pass  # its columns need nothing of the site

    def prepare(self, state: SiteState, lines: Sequence[DataLine]) -> None:
        state.prepare(lines, course_column="courseid", user_column="userid")

    def apply(self, state: SiteState, line: DataLine, options: SyncOptions) -> LineResult:
        if line.values is None:
            return LineResult(line.number, FAILED, "", line.error or "unreadable")
        v = line.values
        cmd = (v.get("cmd") or "add").lower()
        summary = (
            f"{excerpt(cmd)} {excerpt(v['userid']) or '-'} in group"
            f" {excerpt(v['groupid']) or '-'} of {excerpt(v['courseid']) or '-'}"
        )
        try:
            if cmd not in COMMANDS:
                raise LineFailed(f"unknown cmd {quoted(cmd)} (add, del, shift)")
            if options.snapshot is not None and cmd != "add":
                raise LineFailed(
                    f"cmd {cmd} in a snapshot (mode: snapshot): the file lists the members;"
                    " what it does not list is acted on by `missing`"
                )
            course = state.lookups.course(v["courseid"], "courseid")
            if not v["groupid"]:
                raise LineFailed("empty groupid")
            group = state.lookups.group(course, v["groupid"], options.group_key)
            if group is None:
                raise LineFailed(
                    f"no group with {options.group_key} {quoted(v['groupid'])} in course"
                    f" {course.key}"
                )
            if options.snapshot is not None:
                state.part(Listed).named(group, course)  # in scope, whatever the line's fate
            user = state.lookups.user(v["userid"], "userid")
            if options.snapshot is not None:
                state.part(Listed).user(group, user)
            if cmd != "del" and not state.enrolled(course, user):
                raise LineFailed(f"{excerpt(v['userid'])} is not enrolled in {course.key}")
        except LineFailed as exc:
            return LineResult(line.number, FAILED, summary, str(exc))
        changed, kept = False, []
        if cmd == "del":
            owner = state.owner(user, group)
            if owner is not None:
                return LineResult(
                    line.number,
                    FAILED,
                    summary,
                    f"the membership belongs to {owned_by(owner)} (a sync removes only its own)",
                )
            changed = state.remove_member(course, user, group)
        else:
            if cmd == "shift":
                for other in [g for g in state.groups_of(course, user) if g != group]:
                    owner = state.owner(user, other)
                    if owner is None:
                        changed |= state.remove_member(course, user, other)
                    else:
                        name = state.lookups.group_names.get(other, str(other))
                        kept.append(f"kept group {quoted(name)} of {owned_by(owner)}")
            changed |= state.add_member(course, user, group)
        status = CHANGED if changed else UNCHANGED
        return LineResult(line.number, status, summary, "; ".join(kept), course=course)

    def snapshot_key(self, values: dict[str, str], options: SyncOptions) -> tuple[str, str]:
        return f"{values['courseid']}\n{values['groupid']}", values["userid"]

    def listed(
        self, state: SiteState, line: DataLine, options: SyncOptions
    ) -> tuple[int, int | None, Course] | None:
        assert line.values is not None
        v = line.values
        try:
            course = state.lookups.course(v["courseid"], "courseid")
            group = state.lookups.group(course, v["groupid"], options.group_key)
        except LineFailed:
            return None
        if group is None:
            return None
        try:
            return group, state.lookups.user(v["userid"], "userid"), course
        except LineFailed:
            return group, None, course

    def missing(self, state: SiteState, options: SyncOptions) -> Iterator[list[LineResult]]:
        """mode: snapshot: the members of the groups the file names that it does not
        list, removed (`missing: remove`) or kept; only the memberships of the step's
        membership_component (another plugin's stay), a few groups at a time."""
        assert options.snapshot is not None
        if options.snapshot.missing == "keep":
            return
        listed = state.part(Listed)
        gm = state.t.groups_members.c
        for part in chunks([g for g in listed.named_scopes() if g > 0], SNAPSHOT_GROUPS):
            state.writes.wait()
            rows = state.raw.conn.execute(select(gm.groupid, gm.userid).where(gm.groupid.in_(part)))
            candidates = {(int(g), int(u)) for g, u in rows}
            if state.withheld is not None:  # members an earlier file of the preview added
                by_course = {listed.courses[g].id: g for g in part}
                for cid, _ctx, user in state.withheld.pairs:
                    if cid in by_course:
                        candidates.add((by_course[cid], user))
            gone = sorted(
                (g, u)
                for g, u in candidates
                if u not in listed.users.get(g, ()) and listed.may_act(g, u)
            )
            pairs = {(listed.courses[g].id, listed.courses[g].context_id, u) for g, u in gone}
            state.prepare_pairs(pairs)
            names = state.lookups.user_names(sorted({u for _, u in gone}))
            results = []
            for group, user in gone:
                course = listed.courses[group]
                if group not in state.groups_of(course, user) or state.owner(user, group):
                    continue  # not a member (a preview's), or another plugin's membership
                state.remove_member(course, user, group)
                name = state.lookups.group_names.get(group, str(group))
                who = excerpt(names.get(user, str(user)))
                summary = f"del {who} in group {excerpt(name)} of {excerpt(course.key)}"
                results.append(missed(summary, course))
            yield results
