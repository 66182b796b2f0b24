"""The groups command through `postsync run`, on SQLite, PostgreSQL and MariaDB, with
files shaped like tool_sync's groups.csv, groups_update.csv and groupings_update.csv;
and a group members file of the same run finding the groups it creates."""

from __future__ import annotations

from tests.sync.conftest import Site
from tests.sync.test_enrolments import report

STEP = "  - command: groups\n    file: groups*.csv\n"
GROUPS = """type;courseid;name;idnumber;description;selfgrouping;grouping
grouping;MATH101;Grouping A;GRPA;Test grouping for creation A;;
grouping;MATH101;Grouping B;GRPB;Test grouping for creation B;;
group;MATH101;Group 1;TC1_GR1;Test group for creation 1;0;GRPA
group;MATH101;Group 2;TC1_GR2;Test group for creation 2;0;GRPA
group;MATH101;Group 3;TC1_GR3;Test group for creation 3;0;GRPB
group;PHYS101;Group 1B;TC2_GR1;Test group for creation 1;1;
group;PHYS101;Group 9;TC2_GR9;Another;0;NOPE
"""
GROUPS_UPDATE = """courseid;name;updateid;description
MATH101;Group 1 Updated;TC1_GR1;Test group for creation 1 Updated
MATH101;Group 5;TC1_GR5;A new one
"""
GROUPINGS_UPDATE = """type;courseid;name;updateid;description
grouping;MATH101;Grouping A Updated;GRPA;Test grouping for creation A has been updated
"""


def groups(site: Site, body: str, *args: str) -> list[str]:
    site.write("groups.csv", body)
    result = site.run(*args, steps=STEP)
    assert result.code in (0, 2), result.err + result.out
    return report(site)


def links(site: Site, course: str) -> list[tuple[str, str]]:
    return sorted(
        site.query(
            "SELECT gp.idnumber, g.idnumber FROM mdl_groupings_groups gg"
            " JOIN mdl_groupings gp ON gp.id = gg.groupingid JOIN mdl_groups g ON g.id = gg.groupid"
            " JOIN mdl_course c ON c.id = g.courseid WHERE c.idnumber = :c",
            c=course,
        )
    )


def test_tool_sync_groups_samples(site: Site) -> None:
    lines = groups(site, GROUPS)
    assert lines == [
        "line 2: grouping Grouping A in MATH101: ok (created)",
        "line 3: grouping Grouping B in MATH101: ok (created)",
        "line 4: group Group 1 in MATH101: ok (created)",
        "line 5: group Group 2 in MATH101: ok (created)",
        "line 6: group Group 3 in MATH101: ok (created)",
        "line 7: group Group 1B in PHYS101: ok (created; grouping created)",
        "line 8: group Group 9 in PHYS101: failed: no grouping with idnumber NOPE in course"
        " PHYS101 (the rest of the line was applied)",
    ]
    assert links(site, "MATH101") == [
        ("GRPA", "TC1_GR1"),
        ("GRPA", "TC1_GR2"),
        ("GRPB", "TC1_GR3"),
    ]
    assert links(site, "PHYS101") == [("TC2_GR1", "TC2_GR1")]  # its self-grouping
    assert site.query(
        "SELECT name, description, descriptionformat FROM mdl_groups WHERE idnumber = 'TC1_GR1'"
    ) == [("Group 1", "Test group for creation 1", 1)]
    again = groups(site, GROUPS)
    assert all(line.endswith("(unchanged)") for line in again[:-1]), again
    assert again[-1].endswith("failed: no grouping with idnumber NOPE in course PHYS101")

    assert groups(site, GROUPS_UPDATE) == [
        "line 2: group Group 1 Updated in MATH101: ok (set description, name)",
        "line 3: group Group 5 in MATH101: ok (created)",
    ]
    assert site.query("SELECT name FROM mdl_groups WHERE idnumber = 'TC1_GR1'") == [
        ("Group 1 Updated",)
    ]
    assert groups(site, GROUPINGS_UPDATE) == [
        "line 2: grouping Grouping A Updated in MATH101: ok (set description, name)"
    ]
    assert all(line.endswith("(unchanged)") for line in groups(site, GROUPINGS_UPDATE))


def test_names_and_idnumbers_that_clash(site: Site) -> None:
    groups(site, "courseid;name;idnumber\nMATH101;Lab;\nMATH101;Tut;TUT1\n")
    lines = groups(site, "courseid;name;idnumber\nMATH101;Lab;LAB1\nMATH101;Tut;TUT2\n")
    assert lines == [
        "line 2: group Lab in MATH101: ok (set idnumber)",  # the named group had none
        "line 3: group Tut in MATH101: failed: no group has idnumber TUT2, and the group"
        " named 'Tut' has idnumber TUT1",
    ]
    lines = groups(site, "type;courseid;name\nteam;MATH101;X\ngroup;NOPE;X\n")
    assert lines == [
        "line 2: team X in MATH101: failed: unknown type 'team' (group, grouping)",
        "line 3: group X in NOPE: failed: no such course (idnumber NOPE)",
    ]


def test_a_group_members_file_of_the_same_run_finds_the_new_groups(site: Site) -> None:
    site.write("groups.csv", "courseid;name;idnumber\nMATH101;Lab A;LABA\n")
    site.write("enrols.csv", "cmd;cid;uid;rolename\nadd;MATH101;U0001;student\n")
    site.write("groupmembers.csv", "courseid;groupid;userid\nMATH101;LABA;U0001\n")
    steps = (
        STEP
        + "  - command: enrolments\n    file: enrols*.csv\n"
        + "  - command: group_members\n    file: groupmembers*.csv\n"
    )
    before = site.dump()
    preview = site.run("--check", steps=steps)
    assert preview.code == 0, preview.out + preview.err
    assert "groupmembers.csv  (1 line: 1 changed" in preview.out
    assert site.dump() == before
    result = site.run(steps=steps)
    assert result.code == 0, result.out + result.err
    assert "groupmembers.csv  (1 line: 1 changed" in result.out
    assert site.groups_of("MATH101", "U0001") == ["Lab A"]


def test_clean_empty_groups_keeps_the_groups_a_groups_file_declares(site: Site) -> None:
    site.write("groups.csv", "courseid;name;idnumber\nMATH101;Declared;DECL\n")
    site.write(
        "enrols.csv", "cmd;cid;uid;rolename;gcmd;g1\nadd;MATH101;U0001;student;gaddcreate;Stray\n"
    )
    site.write("enrols2.csv", "cmd;cid;uid;rolename\ndel;MATH101;U0001;student\n")
    steps = (
        STEP
        + "  - command: enrolments\n    file: enrols*.csv\n"
        + "post_treatments:\n  - clean_empty_groups: {}\n"
    )
    preview = site.run("--check", steps=steps)
    result = site.run(steps=steps)
    assert result.code == 0, result.out + result.err
    for out in (preview.out, result.out):
        assert "groups.csv declares it" in out, out
    names = {
        r[0]
        for r in site.query(
            "SELECT g.name FROM mdl_groups g JOIN mdl_course c ON c.id = g.courseid"
            " WHERE c.idnumber = 'MATH101'"
        )
    }
    assert "Declared" in names and "Stray" not in names


def test_the_cleanup_previews_the_groupings_and_names_a_groups_file_leaves(
    site: Site,
) -> None:
    """A groups file renames a group (updateid) and makes a grouping that no group
    fills: clean_empty_groups's preview keeps the group under its new name and deletes
    the new grouping, as the run does."""
    site.write(
        "groups.csv",
        "type;courseid;name;idnumber;updateid\n"
        "group;MATH101;Renamed;MATH101-GX;MATH101-G1\n"
        "grouping;MATH101;Unfilled;MATH101-GG;\n",
    )
    site.write("enrols.csv", "cmd;cid;uid;rolename\nadd;MATH101;U0001;student\n")
    steps = (
        STEP
        + "  - command: enrolments\n    file: enrols*.csv\n"
        + "post_treatments:\n  - clean_empty_groups: {groupings: true}\n"
    )
    preview = site.run("--check", steps=steps)
    result = site.run(steps=steps)
    assert result.code == 0, result.out + result.err
    assert 'delete grouping "Unfilled" in course MATH101' in result.out, result.out
    assert '"Renamed" in course MATH101 (groups.csv declares it)' in result.out
    body = [line for line in preview.out.splitlines() if not line.startswith(("PREVIEW", "RECAP"))]
    assert body == result.out.splitlines()[: len(body)], preview.out
