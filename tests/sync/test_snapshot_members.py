"""group_members in `mode: snapshot` through `postsync run`, on SQLite, PostgreSQL and
MariaDB: the members of the groups the file names that it does not list are removed,
only those of the step's membership_component (a membership another plugin owns
stays), never in a group the file does not name; the preview says what the run does;
a second run changes nothing."""

from __future__ import annotations

from tests.sync.conftest import Site
from tests.sync.test_enrolments import report
from tests.sync.test_snapshot_enrolments import HEADER, changes, run

MEMBERS = "courseid;groupid;userid\n"
STEP = (
    "  - command: group_members\n    file: members.csv\n    mode: snapshot\n"
    "    missing: remove\n    first_snapshot: apply\n"
)


def members(site: Site, group: str) -> list[str]:
    return [
        u
        for (u,) in site.query(
            "SELECT u.idnumber FROM mdl_groups_members m JOIN mdl_groups g ON g.id = m.groupid"
            " JOIN mdl_user u ON u.id = m.userid WHERE g.idnumber = :g ORDER BY 1",
            g=group,
        )
    ]


def test_a_snapshot_removes_the_members_it_misses_in_the_groups_it_names(site: Site) -> None:
    site.write(
        "enrols.csv",
        HEADER
        + "".join(f"add;MATH101;U000{i};student;manual;gadd;G1\n" for i in (1, 2, 3, 4))
        + "add;MATH101;U0001;student;manual;gadd;G2\n",
    )
    run(site, "  - command: enrolments\n    file: enrols.csv\n")
    (site.area / "enrols.csv").unlink()
    # U0004's membership is another plugin's
    site.execute(
        "UPDATE mdl_groups_members SET component = 'enrol_cohort', itemid = 1 WHERE userid ="
        " (SELECT id FROM mdl_user WHERE idnumber = 'U0004')"
    )
    site.write("members.csv", MEMBERS + "MATH101;MATH101-G1;U0001\nMATH101;MATH101-G1;U0005\n")
    preview = run(site, STEP, "--check", "--diff", code=2)  # U0005 is not enrolled
    out = run(site, STEP, "--diff", code=2)
    assert changes(preview) == changes(out)
    assert members(site, "MATH101-G1") == ["U0001", "U0004"]
    assert members(site, "MATH101-G2") == ["U0001"]  # not named
    assert report(site)[-2:] == [
        "missing: del U0002 in group G1 of MATH101: ok (missing from the snapshot)",
        "missing: del U0003 in group G1 of MATH101: ok (missing from the snapshot)",
    ]
    out = run(site, STEP, code=2)
    assert "missing from the snapshot" not in out
    site.write("members.csv", MEMBERS + "MATH101;MATH101-G1;U0001\nMATH101;MATH101-G1;U0002\n")
    run(site, STEP.replace("missing: remove", "missing: keep"))
    assert members(site, "MATH101-G1") == ["U0001", "U0002", "U0004"]
