"""max_changes, one guard vocabulary for every destructive change, through `postsync
run` on SQLite, PostgreSQL and MariaDB: each change a sync step makes (suspend,
remove_member, remove_cohort_member, delete_user, suspend_user; unenrol is
max_unenrolments' too: tests/sync/test_preflight.py) and clean_empty_groups'
delete_group, as a count and as a share of its scope: a file over it is rejected whole
by the preview and the run, nothing of it applied; under it, applied. The old names
are aliases; both names at once are refused."""

from __future__ import annotations

from tests.sync.conftest import Site
from tests.treatments.test_groups import cleanup_playbook, groups

ENROLS = "cmd;cid;uid;rolename;enrol;starttime;endtime;gcmd;g1\n"
ENROL_STEP = "  - command: enrolments\n    file: enrols.csv\n"


def refused(site: Site, steps: str, message: str) -> None:
    """The preview and the run reject the step's file with `message`: nothing applied,
    the file left in place."""
    before = site.dump()
    for args in (["--check"], []):
        result = site.run(*args, steps=steps)
        assert result.code == 3, result.out + result.err
        assert message in result.out, result.out
        assert "rejected" in result.out, result.out
    assert site.dump() == before


def applied(site: Site, steps: str) -> None:
    for args in (["--check"], []):
        result = site.run(*args, steps=steps)
        assert result.code == 0, result.out + result.err


def test_suspend_counts_the_enrolments_a_file_suspends(site: Site) -> None:
    site.write(
        "enrols.csv", ENROLS + "".join(f"add;MATH101;U000{i};student\n" for i in range(1, 5))
    )
    applied(site, ENROL_STEP)
    body = "disable;MATH101;U0001;student\ndisable;MATH101;U0002;student\n"
    site.write("enrols.csv", ENROLS + body)
    refused(
        site,
        ENROL_STEP + "    max_changes: {suspend: 1}\n",
        "it suspends 2 enrolments, more than max_changes.suspend 1: a truncated export?"
        " Nothing of it applied; raise max_changes.suspend if the change is real",
    )
    # an enrolment the file itself makes, then suspends, is not counted
    site.write(
        "enrols.csv",
        ENROLS + "add;MATH101;U0008;student\ndisable;MATH101;U0008;student\n"
        "disable;MATH101;U0001;student\n",
    )
    applied(site, ENROL_STEP + "    max_changes: {suspend: 1}\n")
    assert site.enrolled("MATH101", "U0001") == [("student", 1)]


def test_remove_member_as_a_share_of_each_group(site: Site) -> None:
    site.write(
        "enrols.csv",
        ENROLS + "".join(f"add;MATH101;U000{i};student;;;;gadd;G1\n" for i in range(1, 5)),
    )
    applied(site, ENROL_STEP)
    (held,) = site.query(
        "SELECT COUNT(*) FROM mdl_groups_members m JOIN mdl_groups g ON g.id = m.groupid"
        " WHERE g.idnumber = 'MATH101-G1'"
    )[0]
    gone = "".join(f"add;MATH101;U000{i};student;;;;gdel;G1\n" for i in range(1, 4))
    site.write("enrols.csv", ENROLS + gone)
    share = 100 * 3 / held
    refused(
        site,
        ENROL_STEP + "    max_changes: {remove_member: '50%'}\n",
        f"it removes 3 of the {held} members group G1 of MATH101 had before the file"
        f" ({share:.0f}%), more than max_changes.remove_member 50%",
    )
    applied(site, ENROL_STEP + f"    max_changes: {{remove_member: '{share + 1:.0f}%'}}\n")
    # a group_members step has the same limit
    site.write("members.csv", "courseid;groupid;userid;cmd\nMATH101;MATH101-G1;U0004;del\n")
    refused(
        site,
        "  - command: group_members\n    file: members.csv\n    max_changes: {remove_member: 0}\n",
        "it removes 1 group member, more than max_changes.remove_member 0",
    )


def test_remove_cohort_member(site: Site) -> None:
    step = "  - command: cohorts\n    file: cohorts.csv\n"
    site.write("cohorts.csv", "cmd;cidnumber;cname;userid\nadd;C1;One;U0001\nadd;C1;One;U0002\n")
    applied(site, step)
    site.write("cohorts.csv", "cmd;cidnumber;cname;userid\ndel;C1;One;U0001\n")
    refused(
        site,
        step + "    max_changes: {remove_cohort_member: '40%'}\n",
        "it removes 1 of the 2 members cohort C1 had before the file (50%), more than"
        " max_changes.remove_cohort_member 40%",
    )
    applied(site, step + "    max_changes: {remove_cohort_member: 1}\n")


def test_delete_user_and_suspend_user(site: Site) -> None:
    step = "  - command: users\n    file: users.csv\n    user_key: username\n"
    (users,) = site.query("SELECT COUNT(*) FROM mdl_user WHERE deleted = 0")[0]
    site.write("users.csv", "username;firstname;lastname;deleted\nu0001;A;B;1\n")
    refused(
        site,
        step + "    max_changes: {delete_user: 0}\n",
        "it deletes 1 user, more than max_changes.delete_user 0",
    )
    # a user the file creates then deletes is not counted
    site.write(
        "users.csv",
        "username;firstname;lastname;deleted\nfresh;A;B;0\nfresh;A;B;1\n",
    )
    applied(site, step + "    max_changes: {delete_user: 0}\n")
    site.write("users.csv", "username;firstname;lastname;suspended\nu0001;A;B;1\nu0002;A;B;1\n")
    limit = f"{100 * 2 / users / 2:.3f}%"
    refused(
        site,
        step + f"    max_changes: {{suspend_user: '{limit}'}}\n",
        f"it suspends 2 of the {users} users the site had before the file"
        f" ({100 * 2 / users:.0f}%), more than max_changes.suspend_user {limit}",
    )
    applied(site, step + "    max_changes: {suspend_user: 2, delete_user: 0}\n")


def test_both_names_of_a_limit_are_refused(site: Site) -> None:
    site.write("enrols.csv", ENROLS + "add;MATH101;U0001;student\n")
    result = site.run(steps=ENROL_STEP + "    max_unenrolments: 5\n    max_changes: {unenrol: 5}\n")
    assert result.code == 4, result.out + result.err
    assert "max_unenrolments is max_changes' unenrol by its older name: give one of them" in (
        result.err
    )
    result = site.run(steps=ENROL_STEP + "    max_changes: {delete_user: 0}\n")
    assert result.code == 4
    assert "max_changes" in result.err and "delete_user" in result.err


def test_delete_group_as_a_count_and_as_a_share_of_a_course(site: Site) -> None:
    site.write("enrols.csv", ENROLS + "add;MATH101;U0001;student\n")
    (held,) = site.query(
        "SELECT COUNT(*) FROM mdl_groups g JOIN mdl_course c ON c.id = g.courseid"
        " WHERE c.idnumber = 'MATH101'"
    )[0]
    cleanup_playbook(site, "{max_changes: {delete_group: '10%'}, groups: all_empty}")
    before = site.dump()
    message = (
        f"2 of the {held} groups of course MATH101 would be deleted ({100 * 2 / held:.0f}%),"
        " more than max_changes.delete_group (10%); nothing deleted"
    )
    for args in (["--check"], []):
        result = site.run(*args)
        assert result.code == 3, result.out + result.err
        assert message in result.out, result.out
    assert groups(site, "MATH101") == ["G1", "G2"]
    site.write("enrols.csv", ENROLS + "add;MATH101;U0001;student\n")
    cleanup_playbook(site, "{max_changes: {delete_group: 1}, groups: all_empty}")
    result = site.run()
    assert result.code == 3
    assert "2 empty groups would be deleted, more than max_changes.delete_group (1)" in result.out
    cleanup_playbook(site, "{max_changes: {delete_group: 2}, max_deletions: 2}")
    result = site.run()
    assert result.code == 4
    assert "max_deletions is max_changes' delete_group by its older name" in result.err
    cleanup_playbook(site, "{max_changes: {delete_group: '100%'}, groups: all_empty}")
    assert site.run().code == 0
    assert groups(site, "MATH101") == []
    assert site.dump() != before


def test_a_share_in_a_preview_counts_the_runs_earlier_files(site: Site) -> None:
    """The share is of the cohort's members before the file: in a preview as in the
    run, with what the run's earlier file adds (the database does not have it in a
    preview): 2 of 2 would be over 60%, 2 of 5 is not."""
    step = "  - command: cohorts\n    file: cohorts*.csv\n"
    site.write("cohorts0.csv", "cmd;cidnumber;cname;userid\nadd;C1;One;U0001\nadd;C1;One;U0002\n")
    applied(site, step)
    (site.area / "cohorts0.csv").unlink()
    adds = "".join(f"add;C1;One;U000{i}\n" for i in range(3, 6))
    site.write("cohorts1.csv", "cmd;cidnumber;cname;userid\n" + adds)
    site.write("cohorts2.csv", "cmd;cidnumber;cname;userid\ndel;C1;One;U0001\ndel;C1;One;U0002\n")
    applied(site, step + "    max_changes: {remove_cohort_member: '60%'}\n")
    members = site.query(
        "SELECT u.idnumber FROM mdl_cohort_members m JOIN mdl_user u ON u.id = m.userid"
        " JOIN mdl_cohort c ON c.id = m.cohortid WHERE c.idnumber = 'C1' ORDER BY 1"
    )
    assert members == [("U0003",), ("U0004",), ("U0005",)]
