"""The undo's lines and notes from journal lines and the site's rows, without a
database: what the control formats cannot give back is a note on its line."""

from __future__ import annotations

from typing import Any

from runner.undo.plan import make_plan
from runner.undo.render import render
from runner.undo.site import Site
from runner.undo.source import Change

COURSE = 7


def change(kind: str, line: int, **fields: Any) -> Change:
    return Change(kind, {"kind": kind, **fields}, f"f.csv line {line}")


def site() -> Site:
    found = Site(courses={COURSE: "MATH201"})
    found.name_group(11, COURSE, "Lab", "")
    found.name_group(12, COURSE, "Kept", "MATH201-K")
    found.users[5] = {"id": 5, "username": "u5", "deleted": 0, "idnumber": "", "auth": "manual"}
    found.users[5].update(firstname="F", lastname="L")
    found.contexts[1] = (10, 0)  # the system's
    found.cohorts[3] = {"id": 3, "name": "C", "idnumber": "C3", "component": "", "contextid": 9}
    return found


def test_what_the_formats_cannot_give_back_is_noted() -> None:
    plan = make_plan(
        [
            # a group without an idnumber: the groups format names it by updateid
            change("group_updated", 1, courseid=COURSE, id=11, before={"name": "Old"}, after={}),
            # an empty description is never written back
            change(
                "group_updated",
                2,
                courseid=COURSE,
                id=12,
                before={"description": "", "name": "Kept0"},
                after={},
            ),
            change(
                "group_member_removed",
                3,
                courseid=COURSE,
                groupid=12,
                userid=5,
                component="enrol_meta",
                itemid=40,
            ),
            change(
                "cohort_updated",
                4,
                id=3,
                name="C",
                idnumber="C3",
                contextid=9,
                before={"contextid": 1, "name": "C0"},
                after={},
            ),
            # no key names the user any more: username and idnumber both changed
            change(
                "user_updated",
                5,
                id=5,
                user={"username": "u5"},
                before={"username": "u4", "idnumber": "X"},
                after={},
                password_changed=False,
            ),
        ]
    )
    out = render(plan, site())
    assert out.lines["groups"] == [
        (
            {
                "type": "group",
                "courseid": "MATH201",
                "name": "Kept0",
                "idnumber": "MATH201-K",
                "description": "",
                "grouping": "",
                "updateid": "MATH201-K",
            },
            "f.csv line 2",
        )
    ]
    assert out.lines["cohorts_restored"] == [
        ({"cmd": "add", "cid": "3", "cname": "C0"}, "f.csv line 4")
    ]
    notes = dict(out.notes)
    assert "by idnumber, which it has not: not restored" in notes["f.csv line 1"]
    assert "its description was '': the groups format never empties" in notes["f.csv line 2"]
    assert "enrol_meta's (item 40), which no control format writes" in notes["f.csv line 3"]
    assert "never back to the system" in notes["f.csv line 4"]
    assert "changed their username and their idnumber" in notes["f.csv line 5"]
    assert "users_restored" not in out.lines and "users_by_name" not in out.lines


def test_a_deleted_grouping_gets_back_the_groups_that_stay() -> None:
    plan = make_plan(
        [
            change(
                "grouping_deleted",
                1,
                courseid=COURSE,
                id=20,
                name="Pairs",
                idnumber="MATH201-P",
                description="",
                groups=[12, 99],
            )
        ]
    )
    out = render(plan, site())
    assert [values["grouping"] for values, _o in out.lines["groups"]] == ["", "MATH201-P"]
    assert out.lines["groups"][1][0]["name"] == "Kept"
    assert "held group 99, which is gone: link not re-made" in dict(out.notes)["f.csv line 1"]
