"""enrolments in `mode: snapshot` through `postsync run`, on SQLite, PostgreSQL and
MariaDB: the file is the whole truth for the step's plugin's enrolments in its scope
(named courses, an idnumber pattern, a category and below, every course with an
instance). A user missing from it is unenrolled as Moodle's unenrol_user does (roles,
groups), suspended, or suspended without the plugin's roles; manual, self and cohort
enrolments of another plugin and courses out of scope are untouched; the preview
says what the run does; a second run changes nothing; a truncated export is refused
by max_changes; the first snapshot of the step acts on nothing unless told."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.sync.conftest import Site
from tests.sync.test_enrolments import add_instance, report
from tests.sync.test_journal import journal

HEADER = "cmd;cid;uid;rolename;enrol;gcmd;g1\n"
STEP = "  - command: enrolments\n    file: enrols.csv\n"


def snapshot(missing: str = "unenrol", extra: str = "") -> str:
    return STEP + f"    mode: snapshot\n    missing: {missing}\n    first_snapshot: apply\n{extra}"


def state(site: Site, course: str) -> list[tuple[Any, ...]]:
    """Each enrolment of the course: user, plugin, status, roles (component), groups."""
    rows = site.query(
        "SELECT u.idnumber, e.enrol, ue.status FROM mdl_user_enrolments ue"
        " JOIN mdl_enrol e ON e.id = ue.enrolid JOIN mdl_course c ON c.id = e.courseid"
        " JOIN mdl_user u ON u.id = ue.userid WHERE c.idnumber = :c ORDER BY 1, 2",
        c=course,
    )
    found = []
    for user, plugin, status in rows:
        roles = site.query(
            "SELECT r.shortname, ra.component FROM mdl_role_assignments ra"
            " JOIN mdl_role r ON r.id = ra.roleid JOIN mdl_user u ON u.id = ra.userid"
            " JOIN mdl_context x ON x.id = ra.contextid AND x.contextlevel = 50"
            " JOIN mdl_course c ON c.id = x.instanceid"
            " WHERE u.idnumber = :u AND c.idnumber = :c ORDER BY 1, 2",
            u=user,
            c=course,
        )
        groups = site.query(
            "SELECT g.name FROM mdl_groups_members m JOIN mdl_groups g ON g.id = m.groupid"
            " JOIN mdl_course c ON c.id = g.courseid JOIN mdl_user u ON u.id = m.userid"
            " WHERE u.idnumber = :u AND c.idnumber = :c ORDER BY 1",
            u=user,
            c=course,
        )
        found.append((user, plugin, status, roles, [g for (g,) in groups]))
    return found


def users(site: Site, course: str) -> list[str]:
    return sorted({row[0] for row in state(site, course)})


def prepare(site: Site) -> None:
    """MATH101: U0001 (in G1), U0002, U0003 (in G1), U0004 manual students; U0005 by
    self; U0006 by cohort (a role the cohort instance owns); MATH102: U0008 manual."""
    add_instance(site, "MATH101", "self")
    add_instance(site, "MATH101", "cohort")
    site.write(
        "enrols.csv",
        HEADER + "add;MATH101;U0001;student;manual;gadd;G1\nadd;MATH101;U0002;student;manual;;\n"
        "add;MATH101;U0003;student;manual;gadd;G1\nadd;MATH101;U0004;student;manual;;\n"
        "add;MATH101;U0005;student;self;;\nadd;MATH101;U0006;student;cohort;;\n"
        "add;MATH102;U0008;student;manual;;\n",
    )
    result = site.run(steps=STEP)
    assert result.code == 0, result.out + result.err
    (site.area / "enrols.csv").unlink()


def run(site: Site, steps: str, *args: str, code: int = 0) -> str:
    result = site.run(*args, steps=steps)
    assert result.code == code, result.out + result.err
    return result.out


def changes(out: str) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in json.loads(x).items() if k not in ("id", "seq")}
        for x in out.splitlines()
        if x.startswith(" " * 8 + "{")
    ]


def test_a_snapshot_unenrols_whom_it_misses_of_its_plugin_in_the_courses_it_names(
    site: Site,
) -> None:
    prepare(site)
    math102 = state(site, "MATH102")
    body = "".join(f"add;MATH101;U000{i};student;;;\n" for i in (1, 2, 7))
    site.write("enrols.csv", HEADER + body)
    dump = site.dump()
    first = STEP + "    mode: snapshot\n    missing: unenrol\n"
    for args in (["--check"], []):
        out = run(site, first, *args, code=3)
        assert "the first snapshot this step applies to the site would act on 2 rows" in out
    assert site.dump() == dump
    preview = run(site, snapshot(), "--check", "--diff")
    out = run(site, snapshot(), "--diff")
    assert changes(preview) == changes(out)
    assert users(site, "MATH101") == ["U0001", "U0002", "U0005", "U0006", "U0007"]
    assert [row for row in state(site, "MATH101") if row[0] in ("U0005", "U0006")] == [
        ("U0005", "self", 0, [("student", "")], []),
        ("U0006", "cohort", 0, [("student", "enrol_cohort")], []),
    ]
    assert state(site, "MATH102") == math102  # not named
    assert report(site)[3:] == [
        "missing: unenrol U0003 in MATH101 (manual): ok (missing from the snapshot)",
        "missing: unenrol U0004 in MATH101 (manual): ok (missing from the snapshot)",
    ]
    # as unenrol_user: the role and the group go, journaled with no line
    kinds = [(c["kind"], c["line"]) for c in journal(site) if c["line"] is None]
    assert ("group_member_removed", None) in kinds
    assert kinds.count(("user_enrolment_deleted", None)) == 2
    assert kinds.count(("role_unassigned", None)) == 2
    out = run(site, snapshot())  # the same snapshot again changes nothing
    assert "missing from the snapshot" not in out


def test_suspend_and_suspend_and_remove_roles(site: Site) -> None:
    prepare(site)
    site.write(
        "enrols.csv", HEADER + "add;MATH101;U0001;student;;;\nadd;MATH101;U0002;student;;;\n"
    )
    run(site, snapshot("suspend"))
    rows = {row[0]: row for row in state(site, "MATH101")}
    assert rows["U0003"] == ("U0003", "manual", 1, [("student", "")], ["G1"])
    assert rows["U0001"][2] == 0
    assert "2 missing from the snapshot acted on" in run(site, snapshot("suspend_and_remove_roles"))
    rows = {row[0]: row for row in state(site, "MATH101")}
    assert rows["U0003"] == ("U0003", "manual", 1, [], ["G1"])
    assert rows["U0006"] == ("U0006", "cohort", 0, [("student", "enrol_cohort")], [])
    # again: already suspended, no role left: nothing to do
    assert "missing from the snapshot" not in run(site, snapshot("suspend_and_remove_roles"))


def test_scopes_an_idnumber_pattern_and_a_category(site: Site) -> None:
    prepare(site)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;\n")
    before = users(site, "MATH102")
    assert "U0008" in before
    run(site, snapshot("keep", "    scope: {idnumber: 'MATH1*'}\n"))
    assert users(site, "MATH102") == before  # keep
    run(site, snapshot("unenrol", "    scope: {idnumber: 'MATH1*'}\n"))
    assert users(site, "MATH102") == []  # in scope, listed by no line
    assert users(site, "MATH101") == ["U0001", "U0005", "U0006"]
    # a subcategory: MATH201 under it; the scope is the category and below
    site.execute(
        "INSERT INTO mdl_course_categories (name, idnumber, parent, path, depth, sortorder,"
        " coursecount, visible, timemodified) VALUES ('Sub', 'SUB', 1, '', 2, 0, 0, 1, 0)"
    )
    (sub,) = site.query("SELECT id FROM mdl_course_categories WHERE idnumber = 'SUB'")[0]
    site.execute("UPDATE mdl_course_categories SET path = :p WHERE id = :i", p=f"/1/{sub}", i=sub)
    site.execute("UPDATE mdl_course SET category = :c WHERE idnumber = 'MATH201'", c=sub)
    site.write(
        "enrols.csv", HEADER + "add;MATH201;U0009;student;;;\nadd;PHYS101;U0009;student;;;\n"
    )
    run(site, STEP)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;\n")
    run(
        site,
        snapshot("unenrol", "    scope: {category: 1}\n    max_changes: {unenrol: 1}\n"),
        code=3,
    )
    run(site, snapshot("unenrol", "    scope: {category: SUB}\n"))
    assert users(site, "MATH201") == [] and users(site, "PHYS101") == ["U0009"]


def test_a_truncated_export_and_lines_a_snapshot_refuses(site: Site) -> None:
    prepare(site)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;\n")
    dump = site.dump()
    steps = snapshot(extra="    max_changes: {unenrol: '40%'}\n")
    for args in (["--check"], []):
        out = run(site, steps, *args, code=3)
        assert "it unenrols 3 of the" in out and "more than max_changes.unenrol 40%" in out, out
    assert site.dump() == dump
    site.write(
        "enrols.csv",
        HEADER + "add;MATH101;U0001;student;;;\nadd;MATH101;U0002;student;self;;\n"
        "del;MATH101;U0003;student;;;\n",
    )
    out = run(site, snapshot("keep"), code=2)
    assert report(site)[1:] == [
        "line 3: add student U0002 in MATH101: failed: enrol self: this snapshot is the truth"
        " of manual enrolments (the step's enrol)",
        "line 4: del student U0003 in MATH101: failed: cmd del in a snapshot (mode:"
        " snapshot): the file lists the enrolments; what it does not list is acted on by"
        " `missing`",
    ]


@pytest.mark.parametrize("batch", [1, 2, 8000])
def test_the_same_whatever_the_batch_size(
    site: Site, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    """What the snapshot misses is acted on after its last batch, over the state its
    batches left (a failed line's pair included): the same for any batch size."""
    import runner.sync.apply

    prepare(site)
    monkeypatch.setattr(runner.sync.apply, "BATCH", {"": batch, "sqlite": batch})
    site.write(
        "enrols.csv",
        HEADER + "add;MATH101;U0001;student;;gdel;G1\nadd;MATH101;U0007;student;;;\n"
        "del;MATH101;U0003;student;;;\nadd;MATH101;U0002;student;;;\n",
    )
    run(site, snapshot(), code=2)
    assert [row[0] for row in state(site, "MATH101")] == [
        "U0001",
        "U0002",
        "U0005",
        "U0006",
        "U0007",
    ]
    assert state(site, "MATH101")[0] == ("U0001", "manual", 0, [("student", "")], [])
    assert report(site)[-2:] == [
        "missing: unenrol U0003 in MATH101 (manual): ok (missing from the snapshot)",
        "missing: unenrol U0004 in MATH101 (manual): ok (missing from the snapshot)",
    ]


def test_a_self_snapshot_over_every_course_with_an_instance_leaves_manual_ones(
    site: Site,
) -> None:
    """enrol: self, scope: instances: every course with a self instance (MATH101 only)
    is in scope; its self enrolments no line lists go, its manual and cohort ones stay,
    and a course without a self instance is not in scope."""
    prepare(site)
    math102 = state(site, "MATH102")
    site.write("enrols.csv", HEADER + "add;MATH101;U0009;student;self;;\n")
    steps = snapshot("unenrol", "    enrol: self\n    scope: instances\n")
    preview = run(site, steps, "--check", "--diff")
    out = run(site, steps, "--diff")
    assert changes(preview) == changes(out)
    assert report(site)[1:] == [
        "missing: unenrol U0005 in MATH101 (self): ok (missing from the snapshot)"
    ]
    assert [(r[0], r[1]) for r in state(site, "MATH101")] == [
        ("U0001", "manual"),
        ("U0002", "manual"),
        ("U0003", "manual"),
        ("U0004", "manual"),
        ("U0006", "cohort"),
        ("U0009", "self"),
    ]
    assert state(site, "MATH102") == math102
