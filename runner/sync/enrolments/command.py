"""enrolments: tool_sync's enrolment file (enrols.csv)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from runner.core.text import excerpt, number, quoted
from runner.sync.base import (
    CHANGED,
    FAILED,
    UNCHANGED,
    LineFailed,
    LineResult,
    SyncOptions,
    owned_by,
)
from runner.sync.enrolments.roles import role_key
from runner.sync.enrolments.snapshot import unlisted
from runner.sync.reader import Columns, DataLine, Header
from runner.sync.snapshot import Listed

if TYPE_CHECKING:
    from runner.sync.base import Course
    from runner.sync.state import SiteState

COMMANDS = {
    "add": "add",
    "del": "del",
    "delete": "del",
    "shift": "shift",
    "enable": "enable",
    "disable": "disable",
}
#: groups.name is char(254) in Moodle
GROUP_NAME_MAX = 254
GROUP_COMMANDS = ("gadd", "gaddcreate", "greplace", "greplacecreate", "gdel")
GROUP_COLUMNS = tuple(f"g{i}" for i in range(1, 10))


def parse_time(value: str, column: str, options: SyncOptions) -> int | None:
    """`YYYY-MM-DD hh:mm:ss` (the playbook's time zone) or Unix time; empty is None."""
    if not value:
        return None
    seconds = number(value)
    if seconds is not None:
        return seconds
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return int(datetime.strptime(value, fmt).replace(tzinfo=options.tz).timestamp())
        except ValueError:
            continue
    raise LineFailed(f"bad {column} {quoted(value)} (expected YYYY-MM-DD hh:mm:ss or a Unix time)")


class Enrolments:
    """Enrol users in courses with a role, and manage their groups (enrols.csv).

    Columns (header line, any order; `;` by default):
      rolename (required): role shortname, e.g. student, editingteacher.
      cid (required): the course, by `course_key` (idnumber default, shortname, id).
      uid (required): the user, by `user_key` (idnumber default, username, email, id).
      cmd: add (default), del (or delete), shift, enable, disable.
      enrol: enrolment plugin (default manual).
      starttime, endtime: `YYYY-MM-DD hh:mm:ss` (playbook time zone) or Unix time.
      gcmd: gadd, gaddcreate, greplace, greplacecreate, gdel, acting on g1..g9.
      g1 ... g9: group names in the course.

    add ensures the course's enrol instance (a manual one is created as Moodle's
    add_default_instance does, with the site's enrol_manual settings), the user's
    enrolment (active) and the role in the course context; the
    role is a manual one (component '') for plugins whose roles are not protected in
    Moodle (manual, self, flatfile, paypal), else tagged with the plugin and its
    instance, as Moodle's enrol_user does. A line that would enrol through an instance
    disabled in Moodle fails, unless the step sets `allow_disabled_instances: true`
    (del still removes). del
    removes the role and, when the user has no role left in the course, the
    enrolment; removing the user's last enrolment there also removes, as Moodle's
    unenrol_user does, their group memberships in the course, their roles in the
    contexts below it (an activity, a block) and their last access to it. shift makes
    this role the user's only role in the course. enable/disable set the enrolment's
    status. Group commands act on the course's groups by name; `...create` creates
    missing groups.

    Another plugin's rows stay: shift, greplace and gdel never remove a role or a
    group membership that another plugin (e.g. enrol_cohort) owns, and the report
    says what was kept; a gdel of such a membership fails that part. Removing an
    enrolment removes the memberships its instance owns, as Moodle does.

    A line is applied as far as it can be: when its groups part fails (a group that
    does not exist, an unknown gcmd), the enrolment and the groups that exist are
    still applied, as tool_sync does; the line is reported failed, saying which part
    and that the rest was applied, and goes to the retry file (re-running it changes
    nothing more). greplace takes the user out of their other groups only when every
    group of the line exists.

    Example line: `add;MATH101;U0001;student;manual;gaddcreate;G1;G2`

    With `mode: snapshot` the file is the whole truth for the enrolments of the step's
    `enrol` plugin in its `scope`'s courses: its lines are adds of that plugin, and an
    enrolment of it there whose user no line lists is unenrolled (as unenrol_user),
    suspended, suspended without the plugin's roles, or kept (`missing`); see
    "Snapshot feeds".
    """

    columns = Columns(
        ("rolename", "cid", "uid"), ("cmd", "enrol", "starttime", "endtime", "gcmd", *GROUP_COLUMNS)
    )

    def header(self, state: SiteState, header: Header, options: SyncOptions) -> None:
        pass  # its columns need nothing of the site

    def prepare(self, state: SiteState, lines: Sequence[DataLine]) -> None:
        leaving = any(
            COMMANDS.get(((line.values or {}).get("cmd") or "").lower()) == "del" for line in lines
        )
        state.prepare(lines, course_column="cid", user_column="uid", leaving=leaving)

    def apply(self, state: SiteState, line: DataLine, options: SyncOptions) -> LineResult:
        if line.values is None:
            return LineResult(line.number, FAILED, "", line.error or "unreadable")
        v = line.values
        cmd_text = (v.get("cmd") or "add").lower()
        summary = (
            f"{excerpt(cmd_text)} {excerpt(v['rolename']) or '-'} {excerpt(v['uid']) or '-'}"
            f" in {excerpt(v['cid']) or '-'}"
        )
        try:
            cmd = COMMANDS.get(cmd_text)
            if cmd is None:
                raise LineFailed(
                    f"unknown cmd {quoted(cmd_text)} (add, del, shift, enable, disable)"
                )
            snapshot = options.snapshot
            if snapshot is not None and cmd != "add":
                raise LineFailed(
                    f"cmd {cmd_text} in a snapshot (mode: snapshot): the file lists the"
                    " enrolments; what it does not list is acted on by `missing`"
                )
            course = state.lookups.course(v["cid"], "cid")
            if snapshot is not None:
                state.part(Listed).named(course.id)  # in scope, whatever the line's fate
            user = state.lookups.user(v["uid"], "uid")
            if snapshot is not None:
                state.part(Listed).user(course.id, user)
                if (v.get("enrol") or snapshot.enrol) != snapshot.enrol:
                    raise LineFailed(
                        f"enrol {excerpt(v['enrol'])}: this snapshot is the truth of"
                        f" {snapshot.enrol} enrolments (the step's enrol)"
                    )
            done = Done()
            self._apply(state, cmd, course, user, v, options, done)
        except LineFailed as exc:
            return LineResult(line.number, FAILED, summary, str(exc))
        status = CHANGED if done.changed else UNCHANGED
        if done.failed:
            what = "; ".join(done.failed)
            rest = (
                "the rest of the line was applied"
                if done.changed
                else "the rest of the line was already so"
            )
            return LineResult(
                line.number, FAILED, summary, f"{what} ({rest})", course, partly=done.changed
            )
        return LineResult(line.number, status, summary, "; ".join(done.kept), course)

    def _apply(
        self,
        state: SiteState,
        cmd: str,
        course: Course,
        user: int,
        v: Mapping[str, str],
        options: SyncOptions,
        done: Done,
    ) -> None:
        """The enrolment part is checked first, and a failure there fails the line with
        nothing applied; the groups part is applied as far as it can be (`done`)."""
        plugin = v.get("enrol") or (options.snapshot.enrol if options.snapshot else "manual")
        role = state.lookups.role(v["rolename"]) if cmd in ("add", "del", "shift") else 0
        start = parse_time(v.get("starttime", ""), "starttime", options)
        end = parse_time(v.get("endtime", ""), "endtime", options)
        instance = state.lookups.instance(course, plugin)
        gcmd = (v.get("gcmd") or "").lower()
        names = [name for c in GROUP_COLUMNS if (name := v.get(c))] if gcmd else []
        if instance is None and cmd == "del":
            self._check_groups(state, course, cmd, gcmd, names, done)
            return  # without an instance the user cannot hold this enrolment
        if instance is None and not (plugin == "manual" and cmd in ("add", "shift")):
            raise LineFailed(f"no {plugin} enrolment instance in course {course.key}")
        disabled = (instance[1] if instance else state.lookups.manual_defaults()["status"]) != 0
        if disabled and cmd != "del" and not options.allow_disabled:
            what = "is" if instance else "would be, by the site's enrol_manual settings,"
            raise LineFailed(
                f"the {plugin} enrolment instance of course {course.key} {what} disabled in"
                " Moodle (enable it, or set allow_disabled_instances: true)"
            )
        enrol_id = instance[0] if instance else 0
        if cmd in ("enable", "disable") and (enrol_id, user) not in state.enrolments:
            raise LineFailed(f"{excerpt(v['uid'])} is not enrolled in {course.key} by {plugin}")
        groups = self._check_groups(state, course, cmd, gcmd, names, done)

        if instance is None:
            enrol_id = state.lookups.create_manual_instance(course)
            done.changed = True
        key = role_key(role, plugin, enrol_id)
        if cmd in ("add", "shift"):
            done.changed |= state.ensure_enrolment(course, enrol_id, user, start, end)
            done.changed |= state.assign(course, user, key)
            if cmd == "shift":  # the other roles this line's plugin may remove
                for other in [r for r in state.roles_in(course, user) if r != key]:
                    if other[1] == "" or other[1:] == key[1:]:
                        done.changed |= state.unassign(course, user, other)
                    else:
                        done.kept.append(
                            f"kept role {state.lookups.role_name(other[0])} of {other[1]}"
                        )
        elif cmd == "del":
            done.changed |= state.unassign(course, user, key)
            if not state.roles_in(course, user):
                removed = state.remove_enrolment(course, enrol_id, user)
                done.changed |= removed
                # as Moodle's unenrol_user: the instance's own memberships go with it
                for gid in state.members_of_instance(course, user, plugin, enrol_id):
                    done.changed |= state.remove_member(course, user, gid)
                if not state.enrolled(course, user):  # the last: as unenrol_user
                    for gid in list(state.groups_of(course, user)):
                        done.changed |= state.remove_member(course, user, gid)
                    if removed:
                        state.leave(course, user)
        else:
            status = 0 if cmd == "enable" else 1
            done.changed |= state.ensure_enrolment(course, enrol_id, user, start, end, status)
        self._apply_groups(state, course, user, plugin, gcmd, names, groups, done)

    def missing(self, state: SiteState, options: SyncOptions) -> Iterator[list[LineResult]]:
        assert options.snapshot is not None
        return unlisted(state, options, options.snapshot.enrol)

    def snapshot_key(self, values: dict[str, str], options: SyncOptions) -> tuple[str, str]:
        return values["cid"], values["uid"]

    def listed(
        self, state: SiteState, line: DataLine, options: SyncOptions
    ) -> tuple[int, int | None, Course] | None:
        assert line.values is not None
        try:
            course = state.lookups.course(line.values["cid"], "cid")
        except LineFailed:
            return None
        try:
            return course.id, state.lookups.user(line.values["uid"], "uid"), course
        except LineFailed:
            return course.id, None, course

    def _check_groups(
        self,
        state: SiteState,
        course: Course,
        cmd: str,
        gcmd: str,
        names: list[str],
        done: Done,
    ) -> dict[str, int | None]:
        """The line's groups that can be acted on (None: to create); each that cannot
        is a failed part, in `done`."""
        if not gcmd:
            return {}
        if gcmd not in GROUP_COMMANDS:
            done.failed.append(f"unknown gcmd {quoted(gcmd)} ({', '.join(GROUP_COMMANDS)})")
        elif not names:
            done.failed.append(f"gcmd {gcmd} without any group in g1..g9")
        elif cmd == "del" and gcmd != "gdel":
            done.failed.append(f"gcmd {gcmd} cannot go with cmd del")
        if done.failed:
            return {}
        create = gcmd.endswith("create")
        groups: dict[str, int | None] = {}
        for name in names:
            try:
                gid = state.lookups.group(course, name)
            except LineFailed as exc:
                done.failed.append(str(exc))
                continue
            if gid is None and not create:
                hint = "" if gcmd == "gdel" else f" (use {gcmd}create)"
                done.failed.append(f"no group {quoted(name)} in course {course.key}{hint}")
            elif gid is None and len(name) > GROUP_NAME_MAX:
                done.failed.append(
                    f"group name of {len(name)} characters; Moodle allows {GROUP_NAME_MAX}"
                )
            else:
                groups[name] = gid
        return groups

    def _apply_groups(
        self,
        state: SiteState,
        course: Course,
        user: int,
        plugin: str,
        gcmd: str,
        names: list[str],
        groups: dict[str, int | None],
        done: Done,
    ) -> None:
        if not groups:
            return
        if gcmd == "gdel":
            for name, gid in groups.items():
                owner = state.owner(user, gid, plugin) if gid is not None else None
                if owner is not None:
                    done.failed.append(
                        f"the membership of group {quoted(name)} belongs to {owned_by(owner)}"
                        " (a sync removes only its own)"
                    )
                elif gid is not None:
                    done.changed |= state.remove_member(course, user, gid)
            return
        wanted = []
        for name in names:
            if name not in groups:
                continue  # a failed part
            gid = groups[name]
            if gid is None:
                gid = groups[name] = state.lookups.create_group(course, name)
                done.changed = True
            wanted.append(gid)
        # replace: only once every group of the line is known (a mistyped name must not
        # take the user out of their groups), and never another plugin's membership
        if gcmd.startswith("greplace") and len(wanted) == len(names):
            for gid in [g for g in state.groups_of(course, user) if g not in wanted]:
                owner = state.owner(user, gid, plugin)
                if owner is None:
                    done.changed |= state.remove_member(course, user, gid)
                else:
                    name = state.lookups.group_names.get(gid, str(gid))
                    done.kept.append(f"kept group {quoted(name)} of {owned_by(owner)}")
        for gid in wanted:
            done.changed |= state.add_member(course, user, gid)


@dataclass
class Done:
    """What a line did: whether it changed the site, the parts that failed, and what it
    left alone because another plugin owns it."""

    changed: bool = False
    failed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
