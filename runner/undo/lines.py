"""The plan (runner.undo.plan) as control-file lines, in the formats the sync commands
read, naming rows as the written playbook's steps do: courses by shortname, users by
username, roles by shortname, groups by name, groupings and cohorts by idnumber.

Files go in the reverse order of the run's steps: groups and groupings the group
cleanup deleted are made again first, then the group memberships the run added are
removed, the enrolments and roles put back as they were (roles given back before
those the run assigned are removed, so that an enrolment that stays is never left
without a role), the memberships the run removed added again, then the cohorts and the
users. Each line keeps the journal line it reverses (`origin`); what cannot be
written is a note on that line instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.sync.commands import SYNC_COMMANDS, UNPROTECTED_ROLES
from runner.undo.plan import Plan
from runner.undo.site import Site

USERS = SYNC_COMMANDS["users"].columns
COURSE_CONTEXT = 50
CATEGORY_CONTEXT = 40
#: a group_members file: memberships removed (members_out) or given back (members_in)
_MEMBERS: tuple[str, dict[str, Any], tuple[str, ...]] = (
    "group_members",
    {"course_key": "shortname", "user_key": "username", "group_key": "name"},
    ("cmd", "courseid", "groupid", "userid"),
)
#: each written file's command, options and columns, in the order they are applied;
#: the memberships' files, one per component (`members_in:COMPONENT`), name it as
#: their step's membership_component
SPECS: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    "groups": (
        "groups",
        {"course_key": "shortname"},
        ("type", "courseid", "name", "idnumber", "description", "grouping", "updateid"),
    ),
    "members_out": _MEMBERS,
    "enrolments": (
        "enrolments",
        {"course_key": "shortname", "user_key": "username", "allow_disabled_instances": True},
        ("cmd", "cid", "uid", "rolename", "enrol", "starttime", "endtime"),
    ),
    "members_in": _MEMBERS,
    "cohorts": (
        "cohorts",
        {"cohort_key": "idnumber", "user_key": "username"},
        ("cmd", "cidnumber", "cname", "userid", "ccatcontext"),
    ),
    "cohorts_restored": (
        "cohorts",
        {"cohort_key": "id"},
        ("cmd", "cid", "cname", "cidnumber", "cdescription", "ccatcontext"),
    ),
    "users": (
        "users",
        {"user_key": "username"},
        ("auth", *SYNC_COMMANDS["users"].columns.required, "suspended"),
    ),
    "users_restored": ("users", {"user_key": "idnumber", "update_emails": True}, ()),
    "users_by_name": ("users", {"user_key": "username", "update_emails": True}, ()),
}


@dataclass
class Written:
    """The undo: each file's lines (values by column, and the journal line each
    reverses), and the notes on what it cannot reverse."""

    lines: dict[str, list[tuple[dict[str, str], str]]] = field(default_factory=dict)
    notes: list[tuple[str, str]] = field(default_factory=list)

    def add(self, spec: str, origin: str, **values: object) -> None:
        text = {k: "" if v is None else str(v) for k, v in values.items()}
        self.lines.setdefault(spec, []).append((text, origin))

    def note(self, origin: str, text: str) -> None:
        self.notes.append((origin, text))


def wanted(plan: Plan) -> dict[str, set[Any]]:
    """The ids of the site's rows the plan names (runner.undo.site.read_site)."""
    want: dict[str, set[Any]] = {
        k: set()
        for k in [
            "courses",
            "roles",
            "instances",
            "contexts",
            "group_courses",
            "group_ids",
            "groupings",
            "cohorts",
            "users",
            "usernames",
            "people",
            "assignments",
        ]
    }
    for (enrolid, userid), net in plan.enrolments.items():
        want["instances"].add(enrolid)
        want["users"].add(userid)
        want["courses"].add(net.fields["courseid"])
        want["people"].add((int(net.fields["courseid"]), userid))
    for (contextid, userid, roleid, _c, _i), net in plan.roles.items():
        want["contexts"].add(contextid)
        want["roles"].add(roleid)
        want["users"].add(userid)
        want["courses"].add(net.fields["courseid"])
        want["people"].add((int(net.fields["courseid"]), userid))
        want["assignments"].add((contextid, userid))
    for (_g, userid), net in plan.members.items():
        want["users"].add(userid)
        want["courses"].add(net.fields["courseid"])
        want["group_courses"].add(net.fields["courseid"])
    for (kind, _id), change in plan.deleted.items():
        want["courses"].add(change.fields["courseid"])
        if kind == "group":
            want["groupings"].update(change.fields.get("groupings") or [])
        else:
            want["group_ids"].update(change.fields.get("groups") or [])
    for kind, row_id in plan.updated:
        want["group_ids" if kind == "group" else "groupings"].add(row_id)
    for net in plan.cohorts_updated.values():
        if net.before.get("contextid"):
            want["contexts"].add(int(net.before["contextid"]))
    want["cohorts"].update(plan.cohorts_updated)
    for cohortid, userid in plan.cohort_members:
        want["cohorts"].add(cohortid)
        want["users"].add(userid)
    want["cohorts"].update(plan.cohorts_created)
    want["contexts"].update(c.fields["contextid"] for c in plan.cohorts_deleted.values())
    want["users"].update(plan.users_updated)
    want["usernames"].update(c.fields["user"]["username"] for c in plan.users_created)
    return want


def members(plan: Plan, site: Site, out: Written) -> None:
    for (groupid, userid), net in plan.members.items():
        if net.before == net.after:
            continue
        group, user = site.groups.get(groupid), site.user(userid)
        course = site.courses.get(int(net.fields["courseid"]))
        what = "remove from" if net.after else "add back to"
        if group is None or user is None or course is None:
            gone = "group" if group is None else "user" if user is None else "course"
            out.note(net.origin, f"{what} group {groupid}: the {gone} is gone: not reversed")
            continue
        if site.names.get(group, 0) > 1:
            out.note(
                net.origin,
                f"{what} group {group[1]!r}: {site.names[group]} groups of {course} have that "
                "name: not reversed (do it in Moodle)",
            )
            continue
        component, itemid = str(net.fields.get("component") or ""), net.fields.get("itemid")
        if itemid:
            out.note(
                net.origin,
                f"{what} group {group[1]!r}: the membership was {component}'s (item {itemid}),"
                " which no control format writes: not reversed (that plugin's sync gives it"
                " back, or add it in Moodle)",
            )
            continue
        spec = f"{'members_out' if net.after else 'members_in'}:{component}"
        cmd = "del" if net.after else "add"
        out.add(spec, net.origin, cmd=cmd, courseid=course, groupid=group[1], userid=user)


def _plugin(component: str, plugins: list[str]) -> str | None:
    """The enrolments line's plugin that assigns or removes a role of `component`: the
    component's own (enrol_cohort: cohort), or for a manual one ('') the user's manual
    enrolment, else another of theirs whose roles are manual ones."""
    if component.startswith("enrol_"):
        return component.removeprefix("enrol_")
    if component:
        return None
    unprotected = [p for p in plugins if p in UNPROTECTED_ROLES]
    return "manual" if "manual" in unprotected or not unprotected else unprotected[0]


def enrolments(plan: Plan, site: Site, out: Written) -> None:
    # the enrolments before the run, by (course, user): (plugin, state)
    people: dict[tuple[int, int], list[tuple[int, str, Any, Any, str]]] = {}
    for (enrolid, userid), net in plan.enrolments.items():
        course = int(net.fields["courseid"])
        plugin = site.instances.get(enrolid, (course, ""))[1]
        people.setdefault((course, userid), []).append(
            (enrolid, plugin, net.before, net.after, net.origin)
        )
    gives: dict[tuple[int, int], list[tuple[str, str, str]]] = {}
    takes: dict[tuple[int, int], list[tuple[str, str, str]]] = {}
    for (contextid, userid, roleid, component, _itemid), net in plan.roles.items():
        if net.before == net.after:
            continue
        course = int(net.fields["courseid"] or 0)
        level = site.contexts.get(contextid, (0, 0))
        role = site.roles.get(roleid)
        if level[0] > COURSE_CONTEXT and role is not None:
            out.note(
                net.origin,
                f"role {role} in context {contextid}, below the course (an activity or a"
                " block): no control file assigns roles there: not reversed (assign it"
                " again in Moodle)",
            )
            continue
        if level != (COURSE_CONTEXT, course) or role is None:
            out.note(
                net.origin,
                f"role {roleid} in context {contextid}: not a course's context, or the role is "
                "gone: not reversed",
            )
            continue
        plugins = [p for _e, p, *_r in site.enrolled.get((course, userid), [])]
        plugins += [p for _e, p, *_r in people.get((course, userid), [])]
        via = _plugin(component, plugins)
        if via is None:
            out.note(
                net.origin,
                f"role {role} of component {component}: no enrolments line reaches it: not "
                "reversed",
            )
            continue
        (gives if net.before else takes).setdefault((course, userid), []).append(
            (role, via, net.origin)
        )
    for key in sorted(set(people) | set(gives) | set(takes)):
        course, userid = key
        shortname, user = site.courses.get(course), site.user(userid)
        given, taken = gives.get(key, []), takes.get(key, [])
        if shortname is None or user is None:
            for _r, _p, origin in given + taken:
                out.note(
                    origin,
                    f"user {userid} in course {course}: the "
                    f"{'course' if shortname is None else 'user'} is gone: not reversed",
                )
            continue
        line = {"cid": shortname, "uid": user}
        states = people.get(key, [])
        restored = {p for _e, p, before, _a, _o in states if before is not None}
        for role, plugin, origin in given:
            before = next(
                (b for _e, p, b, a, _o in states if p == plugin and b is not None and a is None),
                None,
            )
            start, end = (before[1], before[2]) if before else ("", "")
            out.add(
                "enrolments",
                origin,
                cmd="add",
                **line,
                rolename=role,
                enrol=plugin,
                starttime=start,
                endtime=end,
            )
        for _enrolid, plugin, before, after, origin in states:
            if before is None or before == after:
                continue
            if after is None and not any(p == plugin for _r, p, _o in given):
                out.note(
                    origin,
                    f"re-enrol {user} in {shortname} ({plugin}): the journal names no role the "
                    "run took from them: not re-enrolled (enrol them with their role in "
                    "Moodle)",
                )
                continue
            if after is None and before[0] == 0:
                continue  # the add line above restored it whole
            cmd = "disable" if before[0] else "enable"
            out.add(
                "enrolments",
                origin,
                cmd=cmd,
                **line,
                rolename=given[0][0] if given else "",
                enrol=plugin,
                starttime=before[1],
                endtime=before[2],
            )
        for _e, plugin, status, start, end in site.enrolled.get(key, []):
            if status and plugin not in restored and any(p == plugin for _r, p, _o in given):
                origin = next(o for _r, p, o in given if p == plugin)
                out.add(
                    "enrolments",
                    origin,
                    cmd="disable",
                    **line,
                    rolename="",
                    enrol=plugin,
                    starttime=start,
                    endtime=end,
                )
        for role, plugin, origin in taken:
            out.add("enrolments", origin, cmd="del", **line, rolename=role, enrol=plugin)
        for _enrolid, plugin, before, after, origin in states:
            if before is None and after is not None and not any(p == plugin for _r, p, _o in taken):
                out.note(
                    origin,
                    f"unenrol {user} from {shortname} ({plugin}): the run assigned no role "
                    "with it (the enrolments format unenrols by removing the last role): not "
                    "unenrolled",
                )
