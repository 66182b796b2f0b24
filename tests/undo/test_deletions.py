"""What a deletion took with it (journal lines `"with": ...` before the deleting
line), from hand-written journal lines: a deleted cohort's members given back after
its re-creation, a deleted user's rows counted on the user's one note and never
written."""

from __future__ import annotations

from typing import Any

from runner.undo.lines import wanted
from runner.undo.plan import make_plan
from runner.undo.render import render
from runner.undo.site import Site
from tests.undo.test_render import COURSE, change


def site() -> Site:
    found = Site(courses={COURSE: "MATH201"}, roles={5: "student"})
    for uid, deleted in ((5, 0), (6, 0), (8, 1)):
        found.users[uid] = {"id": uid, "username": f"u{uid}", "deleted": deleted}
    found.contexts[60] = (40, 2)  # category 2's
    found.contexts[70] = (50, COURSE)
    found.instances[30] = (COURSE, "manual")
    found.name_group(11, COURSE, "Lab", "")
    return found


WITH_COHORT = {"with": "cohort_deleted"}


def cohort(line: int, **fields: Any) -> list[Any]:
    """A cohort (id 3, idnumber C3, in category 2) deleted with members 5, 6 and 8."""
    row = {"id": 3, "contextid": 60, "name": "Cohort three", "idnumber": "C3", **fields}
    taken = [
        change("cohort_member_removed", line, id=40 + u, cohortid=3, userid=u, **WITH_COHORT)
        for u in (5, 6, 8)
    ]
    return [*taken, change("cohort_deleted", line, **row)]


def test_a_deleted_cohort_is_made_again_with_its_members() -> None:
    out = render(make_plan(cohort(2)), site())
    assert [values for values, _o in out.lines["cohorts"]] == [
        {
            "cmd": "add",
            "cidnumber": "C3",
            "cname": "Cohort three",
            "userid": "",
            "ccatcontext": "2",
        },
        {
            "cmd": "add",
            "cidnumber": "C3",
            "cname": "Cohort three",
            "userid": "u5",
            "ccatcontext": "",
        },
        {
            "cmd": "add",
            "cidnumber": "C3",
            "cname": "Cohort three",
            "userid": "u6",
            "ccatcontext": "",
        },
    ]
    assert {origin for _v, origin in out.lines["cohorts"]} == {"f.csv line 2"}
    assert out.notes == [
        ("f.csv line 2", "cohort C3 re-created: its description is not journaled: not given back"),
        ("f.csv line 2", "cohort C3 member 8: the user is gone: not given back"),
    ]


def test_a_deleted_cohort_without_idnumber_counts_its_members_on_its_note() -> None:
    out = render(make_plan(cohort(2, idnumber="")), site())
    assert "cohorts" not in out.lines
    ((origin, text),) = out.notes
    assert origin == "f.csv line 2"
    assert text.endswith("not re-created, nor its 3 members given back")


def test_a_cohort_made_and_deleted_by_the_run_needs_nothing() -> None:
    made = change("cohort_created", 1, id=3, contextid=60, name="Cohort three", idnumber="C3")
    added = [change("cohort_member_added", 1, cohortid=3, userid=u) for u in (5, 6, 8)]
    out = render(make_plan([made, *added, *cohort(2)]), site())
    assert out.lines == {} and out.notes == []


def deleted_user(line: int) -> list[Any]:
    """User 8 deleted: an enrolment, a role, a group and a cohort membership with it."""
    rows = [
        ("user_enrolment_deleted", {"id": 1, "enrolid": 30, "courseid": COURSE, "status": 0}),
        ("role_unassigned", {"id": 2, "contextid": 70, "roleid": 5, "courseid": COURSE}),
        ("group_member_removed", {"id": 3, "groupid": 11, "component": "", "itemid": 0}),
        ("cohort_member_removed", {"id": 4, "cohortid": 3}),
    ]
    taken = [change(kind, line, userid=8, **fields) for kind, fields in rows]
    for c in taken:
        c.fields.update({"with": "user_deleted", "timestart": 0, "timeend": 0})
        c.fields.setdefault("component", "")
        c.fields.setdefault("itemid", 0)
    user = {"username": "u8", "idnumber": "U8", "email": "u8@example.org"}
    return [*taken, change("user_deleted", line, id=8, user=user)]


def test_a_deleted_user_is_one_note_with_what_went_with_them() -> None:
    plan = make_plan(deleted_user(4))
    assert not (plan.enrolments or plan.roles or plan.members or plan.cohort_members)
    assert not any(wanted(plan).values())
    out = render(plan, site())
    assert out.lines == {} and out.notes == []
    ((origin, text),) = plan.notes
    assert origin == "f.csv line 4"
    assert text.startswith("user u8 was deleted: a deleted user cannot be restored")
    assert text.endswith(
        "; with them went 1 enrolment, 1 role assignment, 1 group membership,"
        " 1 cohort membership: not given back"
    )
    assert plan.count == 5


def test_what_the_run_changed_of_a_user_it_then_deleted_is_left_as_it_is() -> None:
    enrolled = change(
        "user_enrolment_created",
        1,
        enrolid=30,
        userid=8,
        courseid=COURSE,
        status=0,
        timestart=0,
        timeend=0,
    )
    assigned = change(
        "role_assigned",
        1,
        contextid=70,
        userid=8,
        roleid=5,
        component="",
        itemid=0,
        courseid=COURSE,
    )
    removed = change("group_member_removed", 2, groupid=11, userid=8, component="", itemid=0)
    removed.fields["courseid"] = COURSE
    kept = change("group_member_removed", 3, groupid=11, userid=5, component="", itemid=0)
    kept.fields["courseid"] = COURSE
    plan = make_plan([enrolled, assigned, removed, kept, *deleted_user(4)])
    # no line names user 8: no re-enrolment, no membership added back
    out = render(plan, site())
    assert [values for values, _o in out.lines["members_in:"]] == [
        {"cmd": "add", "courseid": "MATH201", "groupid": "Lab", "userid": "u5"}
    ]
    assert "enrolments" not in out.lines
    (text,) = [t for o, t in plan.notes if o == "f.csv line 4"]
    assert text.endswith(
        "; what the run changed of theirs before (3 enrolment, role or membership rows) is"
        " left as the deletion left it"
    )
