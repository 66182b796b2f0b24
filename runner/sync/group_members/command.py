"""group_members: tool_sync's group membership file (groupmembers.csv)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from runner.core.text import excerpt, quoted
from runner.sync.base import (
    CHANGED,
    FAILED,
    UNCHANGED,
    LineFailed,
    LineResult,
    SyncOptions,
    owned_by,
)
from runner.sync.reader import Columns, DataLine, Header

if TYPE_CHECKING:
    from runner.sync.state import SiteState

COMMANDS = ("add", "del", "shift")


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
            course = state.lookups.course(v["courseid"], "courseid")
            user = state.lookups.user(v["userid"], "userid")
            if not v["groupid"]:
                raise LineFailed("empty groupid")
            group = state.lookups.group(course, v["groupid"], options.group_key)
            if group is None:
                raise LineFailed(
                    f"no group with {options.group_key} {quoted(v['groupid'])} in course"
                    f" {course.key}"
                )
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
