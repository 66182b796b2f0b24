"""What reversing a run takes, from its journal: each row's state before the run and
after it (a row changed twice, added then removed, needs nothing), as intents on ids;
runner.undo.lines turns them into control-file lines by reading the site.

The journal is read in order; for each row (an enrolment, a role assignment, a group
or cohort membership) the first change says what it was before the run and the last
what it is after. A change the control formats cannot reverse, or that the journal
does not tell enough of, is a note on its line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from runner.core.text import plural
from runner.undo.source import Change

#: an enrolment's state: (status, timestart, timeend), or None when there is none
State = tuple[int, int, int] | None


@dataclass
class Net:
    """A row's state before the run (`before`) and after it (`after`), with the line of
    its first change (`origin`) and what the journal told of it (`fields`)."""

    before: Any
    after: Any
    origin: str
    fields: dict[str, Any]


def _changed(table: dict[Any, Net], key: Any, change: Change) -> None:
    """A row's update: the earliest value of each column is the one before the run, the
    latest the one after it."""
    before, after = dict(change.fields.get("before") or {}), dict(change.fields.get("after") or {})
    found = table.get(key)
    if found is None:
        table[key] = Net(before, after, change.origin, change.fields)
    else:
        found.before = {**before, **found.before}
        found.after = {**found.after, **after}


def _track(table: dict[Any, Net], key: Any, before: Any, after: Any, change: Change) -> None:
    found = table.get(key)
    if found is None:
        table[key] = Net(before, after, change.origin, change.fields)
    else:
        found.after = after


@dataclass
class Plan:
    """The run's changes, net, by row."""

    enrolments: dict[tuple[int, int], Net] = field(default_factory=dict)
    roles: dict[tuple[int, int, int, str, int], Net] = field(default_factory=dict)
    members: dict[tuple[int, int], Net] = field(default_factory=dict)
    cohort_members: dict[tuple[int, int], Net] = field(default_factory=dict)
    #: groups and groupings the run created or deleted, by (kind, id)
    created: dict[tuple[str, int], Change] = field(default_factory=dict)
    deleted: dict[tuple[str, int], Change] = field(default_factory=dict)
    #: groups and groupings the run updated, by (kind, id): `before` each changed
    #: column's value before the run, `after` its last
    updated: dict[tuple[str, int], Net] = field(default_factory=dict)
    cohorts_created: dict[int, Change] = field(default_factory=dict)
    cohorts_deleted: dict[int, Change] = field(default_factory=dict)
    cohorts_updated: dict[int, Net] = field(default_factory=dict)
    users_created: list[Change] = field(default_factory=list)
    users_updated: dict[int, Net] = field(default_factory=dict)
    #: what a user's deletion took with it (lines `"with": "user_deleted"`, which come
    #: before their user_deleted line), by user id: how many rows of each kind
    taken: dict[int, Counter[str]] = field(default_factory=dict)
    #: (origin, what cannot be reversed and why), in the journal's order
    notes: list[tuple[str, str]] = field(default_factory=list)
    #: the enrolments' course, by enrolid
    courses: dict[int, int] = field(default_factory=dict)
    count: int = 0

    def note(self, change: Change, text: str) -> None:
        self.notes.append((change.origin, text))


def _enrolment(plan: Plan, c: Change) -> None:
    f = c.fields
    key = (int(f["enrolid"]), int(f["userid"]))
    plan.courses[key[0]] = int(f["courseid"])
    if c.kind == "user_enrolment_created":
        _track(plan.enrolments, key, None, (f["status"], f["timestart"], f["timeend"]), c)
    elif c.kind == "user_enrolment_deleted":
        _track(plan.enrolments, key, (f["status"], f["timestart"], f["timeend"]), None, c)
    else:
        b, a = f["before"], f["after"]
        before = (b["status"], b["timestart"], b["timeend"])
        _track(plan.enrolments, key, before, (a["status"], a["timestart"], a["timeend"]), c)


def _role(plan: Plan, c: Change) -> None:
    f = c.fields
    key = (
        int(f["contextid"]),
        int(f["userid"]),
        int(f["roleid"]),
        str(f["component"]),
        int(f["itemid"]),
    )
    assigned = c.kind == "role_assigned"
    _track(plan.roles, key, not assigned, assigned, c)


def _group(plan: Plan, c: Change) -> None:
    f = c.fields
    kind = c.kind.split("_")[0]  # group, grouping
    if c.kind.endswith("_deleted"):
        if f.get("id") is None:
            plan.note(c, f"the deleted {kind}'s id is not in the journal: not re-created")
            return
        key = (kind, int(f["id"]))
        if key in plan.created:  # made and deleted by the same run: nothing to do
            del plan.created[key]
            plan.updated.pop(key, None)
            return
        plan.deleted[key] = c
    elif c.kind.endswith("_created"):
        if f.get("id") is None:
            plan.note(c, f"the created {kind}'s id is not in the journal: left as it is")
            return
        plan.created[(kind, int(f["id"]))] = c
    elif c.kind.endswith("_updated"):
        if f.get("id") is None:
            plan.note(c, f"the updated {kind}'s id is not in the journal: not restored")
        elif (kind, int(f["id"])) not in plan.created:  # one the run made stays as it is
            _changed(plan.updated, (kind, int(f["id"])), c)
    else:  # grouping_group_assigned
        plan.note(
            c,
            f"group {f.get('groupid')} put in grouping {f.get('groupingid')}: the groups"
            " format adds groups to groupings, never takes them out: remove it in Moodle"
            " (Groupings page of the course)",
        )


def _cohort(plan: Plan, c: Change) -> None:
    f = c.fields
    if c.kind in ("cohort_member_added", "cohort_member_removed"):
        if f.get("cohortid") is None:
            plan.note(c, "the cohort's id is not in the journal: not reversed")
            return
        added = c.kind == "cohort_member_added"
        _track(plan.cohort_members, (int(f["cohortid"]), int(f["userid"])), not added, added, c)
    elif f.get("id") is None:
        plan.note(c, "the cohort's id is not in the journal: not reversed")
    elif c.kind == "cohort_created":
        plan.cohorts_created[int(f["id"])] = c
    elif c.kind == "cohort_deleted":
        if plan.cohorts_created.pop(int(f["id"]), None) is None:
            plan.cohorts_deleted[int(f["id"])] = c
        else:
            plan.cohorts_updated.pop(int(f["id"]), None)
    elif int(f["id"]) not in plan.cohorts_created:  # cohort_updated
        _changed(plan.cohorts_updated, int(f["id"]), c)


def _user(plan: Plan, c: Change) -> None:
    f = c.fields
    who = (f.get("user") or {}).get("username")
    if c.kind == "user_created":
        plan.users_created.append(c)
    elif c.kind == "user_deleted":
        _deleted_user(plan, c, who)
    elif f.get("id") is None:
        plan.note(c, f"user {who} updated, but the journal has no id for it: not restored")
    else:
        key = int(f["id"])
        before = dict(f.get("before") or {})
        found = plan.users_updated.get(key)
        if found is None:
            plan.users_updated[key] = Net(before, f.get("after"), c.origin, f)
        else:  # the earliest value of each column is the one before the run
            found.before = {**before, **found.before}
        if f.get("password_changed"):
            plan.note(
                c,
                f"user {who}'s password was set: a password is never journaled, never"
                " restored (the user keeps the new one, or resets it)",
            )


#: what a user's deletion takes, as its note counts it
TAKEN = (
    ("user_enrolment_deleted", "enrolment"),
    ("role_unassigned", "role assignment"),
    ("group_member_removed", "group membership"),
    ("cohort_member_removed", "cohort membership"),
)


def _deleted_user(plan: Plan, c: Change, who: str | None) -> None:
    """A deleted user's note, counting what went with them. Their rows leave the plan:
    no line can name a deleted user, and the note says what is not given back."""
    userid = c.fields.get("id")
    taken = plan.taken.pop(int(userid), Counter()) if userid is not None else Counter()
    earlier = 0
    if userid is not None:
        tables: list[dict[Any, Net]] = [
            plan.enrolments,
            plan.roles,
            plan.members,
            plan.cohort_members,
        ]
        for table in tables:  # each key's second item is the user's id
            for key in [k for k in table if k[1] == int(userid)]:
                net = table.pop(key)
                earlier += net.before != net.after
    went = [plural(n, name) for kind, name in TAKEN if (n := taken.get(kind, 0))]
    text = (
        f"user {who} was deleted: a deleted user cannot be restored (Moodle's deletion"
        " rewrites the username, e-mail and idnumber; the profile is not journaled)"
    )
    text += f"; with them went {', '.join(went)}: not given back" if went else ""
    if earlier:
        text += (
            f"; what the run changed of theirs before ({earlier:,} enrolment, role or"
            " membership rows) is left as the deletion left it"
        )
    plan.note(c, text)


def make_plan(changes: Iterable[Change]) -> Plan:
    """The run's changes, net by row (reads the journal once, in order)."""
    plan = Plan()
    for c in changes:
        plan.count += 1
        kind = c.kind
        if c.fields.get("with") == "user_deleted":  # counted on the user's deletion
            taken = plan.taken.setdefault(int(c.fields["userid"]), Counter())
            taken[kind] += 1
            continue
        if kind.startswith("user_enrolment_"):
            _enrolment(plan, c)
        elif kind.startswith("role_"):
            _role(plan, c)
        elif kind.startswith("group_member_"):
            f = c.fields
            added = kind == "group_member_added"
            key = (int(f["groupid"]), int(f["userid"]))
            _track(plan.members, key, not added, added, c)
        elif kind.startswith(("group_", "grouping_")):
            _group(plan, c)
        elif kind.startswith("cohort"):
            _cohort(plan, c)
        elif kind.startswith("user_"):
            _user(plan, c)
        elif kind == "enrol_instance_created":
            plan.note(
                c,
                f"enrolment instance {c.fields.get('id')} ({c.fields.get('enrol')}) created in"
                " the course: no control format removes one; it stays (delete it in Moodle"
                " if wanted)",
            )
        elif kind == "course_left":
            lost = ", ".join(c.fields.get("not_listed") or [])
            plan.note(
                c,
                f"user {c.fields.get('userid')} left the course: what went with the last"
                f" enrolment and is not journaled ({lost}) is not given back",
            )
    return plan
