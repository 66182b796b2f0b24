"""enrolments: tool_sync's enrolment file (enrols.csv)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from runner.sync.base import CHANGED, FAILED, UNCHANGED, LineFailed, LineResult, SyncOptions
from runner.sync.reader import Columns, DataLine

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
    if value.isdigit():
        return int(value)
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return int(datetime.strptime(value, fmt).replace(tzinfo=options.tz).timestamp())
        except ValueError:
            continue
    raise LineFailed(f"bad {column} {value!r} (expected YYYY-MM-DD hh:mm:ss or a Unix time)")


#: Moodle's enrol plugins whose roles are not protected (their roles_protected() is
#: false): they assign roles as manual ones, component '' and item 0
UNPROTECTED_ROLES = frozenset({"manual", "self", "fee", "flatfile", "paypal"})


def role_key(role_id: int, plugin: str, enrol_id: int) -> tuple[int, str, int]:
    """The role assignment a plugin's enrol_user makes: as a manual one ('', 0) for a
    plugin whose roles are not protected, else tagged with its component and instance
    (Moodle's enrol_plugin::enrol_user)."""
    if plugin in UNPROTECTED_ROLES:
        return (role_id, "", 0)
    return (role_id, f"enrol_{plugin}", enrol_id)


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

    add ensures the course's enrol instance (a manual one is created with Moodle's
    defaults), the user's enrolment (active) and the role in the course context; the
    role is a manual one (component '') for plugins whose roles are not protected in
    Moodle (manual, self, fee, flatfile, paypal), else tagged with the plugin and its
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

    Example line: `add;MATH101;U0001;student;manual;gaddcreate;G1;G2`
    """

    columns = Columns(
        ("rolename", "cid", "uid"), ("cmd", "enrol", "starttime", "endtime", "gcmd", *GROUP_COLUMNS)
    )

    def prepare(self, state: SiteState, lines: Sequence[DataLine]) -> None:
        state.prepare(lines, course_column="cid", user_column="uid")

    def apply(self, state: SiteState, line: DataLine, options: SyncOptions) -> LineResult:
        if line.values is None:
            return LineResult(line.number, FAILED, "", line.error or "unreadable")
        v = line.values
        cmd_text = (v.get("cmd") or "add").lower()
        summary = f"{cmd_text} {v['rolename'] or '-'} {v['uid'] or '-'} in {v['cid'] or '-'}"
        course = None
        try:
            cmd = COMMANDS.get(cmd_text)
            if cmd is None:
                raise LineFailed(f"unknown cmd {cmd_text!r} (add, del, shift, enable, disable)")
            course = state.lookups.course(v["cid"], "cid")
            user = state.lookups.user(v["uid"], "uid")
            changed = self._apply(state, cmd, course, user, v, options)
        except LineFailed as exc:
            return LineResult(line.number, FAILED, summary, str(exc))
        return LineResult(line.number, CHANGED if changed else UNCHANGED, summary, course=course)

    def _apply(
        self,
        state: SiteState,
        cmd: str,
        course: Course,
        user: int,
        v: Mapping[str, str],
        options: SyncOptions,
    ) -> bool:
        # Check everything first: a failed line changes nothing.
        plugin = v.get("enrol") or "manual"
        role = state.lookups.role(v["rolename"]) if cmd in ("add", "del", "shift") else 0
        start = parse_time(v.get("starttime", ""), "starttime", options)
        end = parse_time(v.get("endtime", ""), "endtime", options)
        instance = state.lookups.instance(course, plugin)
        gcmd = (v.get("gcmd") or "").lower()
        names = [name for c in GROUP_COLUMNS if (name := v.get(c))] if gcmd else []
        groups = self._check_groups(state, course, cmd, gcmd, names)
        if instance is None and cmd == "del":
            return False  # without an instance the user cannot hold this enrolment
        if instance is None and not (plugin == "manual" and cmd in ("add", "shift")):
            raise LineFailed(f"no {plugin} enrolment instance in course {course.key}")
        disabled = instance is not None and instance[1] != 0
        if disabled and cmd != "del" and not options.allow_disabled:
            raise LineFailed(
                f"the {plugin} enrolment instance of course {course.key} is disabled in"
                " Moodle (enable it, or set allow_disabled_instances: true)"
            )
        enrol_id = instance[0] if instance else 0
        if cmd in ("enable", "disable") and (enrol_id, user) not in state.enrolments:
            raise LineFailed(f"{v['uid']} is not enrolled in {course.key} by {plugin}")

        changed = False
        if instance is None:
            enrol_id = state.lookups.create_manual_instance(course)
            changed = True
        key = role_key(role, plugin, enrol_id)
        if cmd in ("add", "shift"):
            changed |= state.ensure_enrolment(course, enrol_id, user, start, end)
            changed |= state.assign(course, user, key)
            if cmd == "shift":
                for other in [r for r in state.roles_in(course, user) if r != key]:
                    changed |= state.unassign(course, user, other)
        elif cmd == "del":
            changed |= state.unassign(course, user, key)
            if not state.roles_in(course, user):
                removed = state.remove_enrolment(course, enrol_id, user)
                changed |= removed
                if not state.enrolled(course, user):  # as Moodle's unenrol_user does
                    for gid in list(state.groups_of(course, user)):
                        changed |= state.remove_member(course, user, gid)
                    if removed:
                        state.leave(course, user)
        else:
            status = 0 if cmd == "enable" else 1
            changed |= state.ensure_enrolment(course, enrol_id, user, start, end, status)
        return self._apply_groups(state, course, user, gcmd, names, groups) or changed

    def _check_groups(
        self, state: SiteState, course: Course, cmd: str, gcmd: str, names: list[str]
    ) -> dict[str, int | None]:
        if not gcmd:
            return {}
        if gcmd not in GROUP_COMMANDS:
            raise LineFailed(f"unknown gcmd {gcmd!r} ({', '.join(GROUP_COMMANDS)})")
        if not names:
            raise LineFailed(f"gcmd {gcmd} without any group in g1..g9")
        if cmd == "del" and gcmd != "gdel":
            raise LineFailed(f"gcmd {gcmd} cannot go with cmd del")
        groups = {name: state.lookups.group(course, name) for name in names}
        for name, gid in groups.items():
            if gid is None and gcmd.endswith("create") and len(name) > GROUP_NAME_MAX:
                raise LineFailed(
                    f"group name of {len(name)} characters; Moodle allows {GROUP_NAME_MAX}"
                )
        if not gcmd.endswith("create"):
            missing = [n for n, gid in groups.items() if gid is None]
            if missing:
                raise LineFailed(
                    f"no group {missing[0]!r} in course {course.key}"
                    + ("" if gcmd == "gdel" else f" (use {gcmd}create)")
                )
        return groups

    def _apply_groups(
        self,
        state: SiteState,
        course: Course,
        user: int,
        gcmd: str,
        names: list[str],
        groups: dict[str, int | None],
    ) -> bool:
        if not gcmd:
            return False
        changed = False
        if gcmd == "gdel":
            for gid in groups.values():
                if gid is not None:
                    changed |= state.remove_member(course, user, gid)
            return changed
        wanted = []
        for name in names:
            gid = groups[name]
            if gid is None:
                gid = groups[name] = state.lookups.create_group(course, name)
                changed = True
            wanted.append(gid)
        if gcmd.startswith("greplace"):
            for gid in [g for g in state.groups_of(course, user) if g not in wanted]:
                changed |= state.remove_member(course, user, gid)
        for gid in wanted:
            changed |= state.add_member(course, user, gid)
        return changed
