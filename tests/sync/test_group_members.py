"""The group_members command through `postsync run`, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.sync.conftest import ENROLMENTS_STEP, Site
from tests.sync.test_enrolments import report

STEP = "  - command: group_members\n    file: groupmembers.csv\n"


def enrol(site: Site, *pairs: tuple[str, str]) -> None:
    site.write("enrols.csv", "cid;uid;rolename\n" + "".join(f"{c};{u};student\n" for c, u in pairs))
    assert site.run(steps=ENROLMENTS_STEP).code == 0
    (site.area / "enrols.csv").unlink()


def members(site: Site, body: str, step: str = STEP) -> list[str]:
    site.write("groupmembers.csv", "courseid;groupid;userid;cmd\n" + body)
    result = site.run(steps=step)
    assert result.code in (0, 2), result.out + result.err
    return report(site)


def test_add_del_shift(site: Site) -> None:
    enrol(site, ("MATH101", "U0001"))
    assert members(site, "MATH101;MATH101-G1;U0001;add\n") == [
        "line 2: add U0001 in group MATH101-G1 of MATH101: ok"
    ]
    assert site.groups_of("MATH101", "U0001") == ["G1"]
    assert members(site, "MATH101;MATH101-G1;U0001;\n") == [
        "line 2: add U0001 in group MATH101-G1 of MATH101: ok (unchanged)"
    ]
    members(site, "MATH101;MATH101-G2;U0001;shift\n")
    assert site.groups_of("MATH101", "U0001") == ["G2"]
    members(site, "MATH101;MATH101-G2;U0001;del\n")
    assert site.groups_of("MATH101", "U0001") == []


def test_group_key_name(site: Site) -> None:
    enrol(site, ("PHYS101", "U0002"))
    members(site, "PHYS101;G2;U0002;add\n", STEP + "    group_key: name\n")
    assert site.groups_of("PHYS101", "U0002") == ["G2"]


def test_failing_lines(site: Site) -> None:
    enrol(site, ("MATH101", "U0003"))
    before = site.dump()
    lines = members(
        site,
        "MATH101;MATH101-G1;U0004;add\n"
        "MATH101;MATH101-G9;U0003;add\n"
        "MATH101;MATH101-G1;U9999;add\n"
        "NOPE;MATH101-G1;U0003;add\n"
        "MATH101;MATH101-G1;U0003;move\n"
        "MATH101;;U0003;add\n",
    )
    assert [line.split(": failed: ")[1] for line in lines] == [
        "U0004 is not enrolled in MATH101",
        "no group with idnumber 'MATH101-G9' in course MATH101",
        "no such user (idnumber U9999)",
        "no such course (idnumber NOPE)",
        "unknown cmd 'move' (add, del, shift)",
        "empty groupid",
    ]
    assert site.dump() == before


def test_membership_bumps_group_timemodified(site: Site) -> None:
    enrol(site, ("CHEM201", "U0005"))
    site.execute("UPDATE mdl_groups SET timemodified = 0")
    members(site, "CHEM201;CHEM201-G1;U0005;add\n")
    assert site.query("SELECT name FROM mdl_groups WHERE timemodified > 0") == [("G1",)]
