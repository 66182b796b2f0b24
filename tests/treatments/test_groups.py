"""clean_empty_groups through `postsync run`, on SQLite, PostgreSQL and MariaDB.

The demo site's groups were made in Moodle, not by a feed: these tests of what a
deletion does ask for every empty group (`groups: all_empty`); the default, which
deletes only the groups a feed made, is tested in test_groups_selection.py."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import paused
from tests.sync.conftest import ENROLMENTS_STEP, Site

HEADER = "cmd;cid;uid;rolename;enrol;starttime;endtime;gcmd;g1;g2\n"


def cleanup_playbook(site: Site, params: str = "{}", steps: str = ENROLMENTS_STEP) -> None:
    site.playbook(steps, "")
    text = (site.root / "playbook.yml").read_text()
    (site.root / "playbook.yml").write_text(
        text + f"post_treatments:\n  - name: cleanup\n    clean_empty_groups: {params}\n"
    )


def groups(site: Site, course: str) -> list[str]:
    return [
        r[0]
        for r in site.query(
            "SELECT g.name FROM mdl_groups g JOIN mdl_course c ON c.id = g.courseid"
            " WHERE c.idnumber = :course ORDER BY g.name",
            course=course,
        )
    ]


def fill_g1(site: Site) -> None:
    """The file puts U0001 in MATH101's G1 and U0002 in CHEM201's: their G2 stay empty."""
    site.write(
        "enrols.csv",
        HEADER + "add;MATH101;U0001;student;;;;gadd;G1;\nadd;CHEM201;U0002;student;;;;gadd;G1;\n",
    )


def deletions(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if line.startswith('    delete group "')]


def add_grouping(
    site: Site, course: str, name: str, group_names: list[str], *, default: bool = False
) -> None:
    (cid,) = site.query("SELECT id FROM mdl_course WHERE idnumber = :c", c=course)[0]
    site.execute(
        "INSERT INTO mdl_groupings (courseid, name, idnumber, description, descriptionformat,"
        " configdata, timecreated, timemodified) VALUES (:c, :n, '', '', 0, '', 0, 0)",
        c=cid,
        n=name,
    )
    (gid,) = site.query("SELECT id FROM mdl_groupings WHERE name = :n", n=name)[0]
    if default:
        site.execute("UPDATE mdl_course SET defaultgroupingid = :g WHERE id = :c", g=gid, c=cid)
    for group in group_names:
        site.execute(
            "INSERT INTO mdl_groupings_groups (groupingid, groupid, timeadded)"
            " SELECT :g, id, 0 FROM mdl_groups WHERE courseid = :c AND name = :n",
            g=gid,
            c=cid,
            n=group,
        )


def test_deletes_empty_groups_of_processed_courses_only(site: Site) -> None:
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;gadd;G1;\n")
    add_grouping(site, "MATH101", "Tutorials", ["G2"], default=True)
    add_grouping(site, "MATH101", "Lectures", ["G1"])
    add_grouping(site, "CHEM201", "Labs", ["G2"])
    cleanup_playbook(site, "{groupings: true, groups: all_empty}")
    result = site.run()
    assert result.code == 0, result.out
    assert deletions(result.out) == ['delete group "G2" in course MATH101  (idnumber MATH101-G2)']
    assert 'delete grouping "Tutorials" in course MATH101' in result.out
    assert "1 grouping left with no group" in result.out
    assert groups(site, "MATH101") == ["G1"]  # G1 has a member now
    assert groups(site, "CHEM201") == ["G1", "G2"]  # a course the run did not touch
    assert [r[0] for r in site.query("SELECT name FROM mdl_groupings ORDER BY name")] == [
        "Labs",
        "Lectures",
    ]
    # the grouping links went with the group, and the course's default grouping is reset
    assert site.query(
        "SELECT COUNT(*) FROM mdl_groupings_groups gg"
        " LEFT JOIN mdl_groups g ON g.id = gg.groupid WHERE g.id IS NULL"
    ) == [(0,)]
    assert site.query("SELECT defaultgroupingid FROM mdl_course WHERE idnumber = 'MATH101'") == [
        (0,)
    ]
    again = site.run()
    assert again.code == 0
    assert "OK       cleanup  (no empty group to delete in the 1 processed course" in again.out


def test_preview_sees_what_the_sync_would_do_and_changes_nothing(site: Site) -> None:
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;gadd;G1;\n")
    cleanup_playbook(site, "{groups: all_empty}")
    assert site.run().code == 0  # MATH101-G2 goes; U0001 is in G1
    # this file empties G1 (the last member is unenrolled) and creates "New" with a member
    site.write(
        "enrols.csv",
        HEADER + "del;MATH101;U0001;student;;;;;;\nadd;MATH101;U0002;student;;;;gaddcreate;New;\n",
    )
    before = site.dump()
    preview = site.run("--check")
    assert site.dump() == before
    real = site.run()
    assert deletions(preview.out) == deletions(real.out)
    assert deletions(real.out) == ['delete group "G1" in course MATH101  (idnumber MATH101-G1)']
    assert groups(site, "MATH101") == ["New"]


def test_max_deletions_fails_and_deletes_nothing(site: Site) -> None:
    site.write(
        "enrols.csv",
        HEADER + "".join(f"add;{c};U0001;student;;;;;;\n" for c in ("MATH101", "CHEM201")),
    )
    cleanup_playbook(site, "{max_deletions: 3, groups: all_empty}")
    result = site.run()
    assert result.code == 3
    assert "4 empty groups would be deleted, more than max_deletions (3); nothing deleted" in (
        result.out
    )
    assert groups(site, "MATH101") == ["G1", "G2"]
    cleanup_playbook(site, "{max_deletions: 4, groupings: true, groups: all_empty}")
    result = site.run()
    assert len(deletions(result.out)) == 4
    # no grouping was left empty: the step's line does not speak of groupings
    assert "CHANGED  cleanup  (4 empty groups in the 2 processed courses)\n" in result.out


def test_skipped_without_an_enrolment_file_and_all_courses_on_request(site: Site) -> None:
    cleanup_playbook(site)
    result = site.run()
    assert "SKIPPED  cleanup  (no enrolments or group_members file was processed)" in result.out
    cleanup_playbook(site, "{courses: all, groups: all_empty}")
    site.execute(
        "INSERT INTO mdl_groups_members (groupid, userid, timeadded, component, itemid)"
        " SELECT g.id, 5, 0, '', 0 FROM mdl_groups g WHERE g.idnumber = 'MATH101-G1'"
    )
    result = site.run()
    assert result.code == 0
    assert len(deletions(result.out)) == 71  # every group of the site but one
    assert groups(site, "MATH101") == ["G1"]


def test_bad_parameters_are_located(site: Site) -> None:
    cleanup_playbook(site, "{max_deletions: -1, courses: some}")
    result = site.run()
    assert result.code == 4
    assert "playbook.yml:9:" in result.err
    assert "post_treatments[0].clean_empty_groups.max_deletions: -1 is less than the minimum" in (
        result.err
    )
    assert "post_treatments[0].clean_empty_groups.courses:" in result.err


def test_deletion_does_to_events_and_activities_what_moodle_does(site: Site) -> None:
    """As groups_delete_group and groups_delete_grouping: the group's calendar events
    go, an activity restricted to a deleted grouping is restricted no more and its
    course's cache revision moves on; another group's event and another course's
    activity stay. A group with a picture is kept (its file is Moodle's to delete)."""
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;gadd;G1;\n")
    add_grouping(site, "MATH101", "Tutorials", ["G2"])
    add_grouping(site, "PHYS101", "Labs", [])
    (g1, g2) = [
        r[0]
        for r in site.query(
            "SELECT g.id FROM mdl_groups g JOIN mdl_course c ON c.id = g.courseid"
            " WHERE c.idnumber = 'MATH101' ORDER BY g.name"
        )
    ]
    for group in (g1, g2):
        site.execute(
            "INSERT INTO mdl_event (name, description, format, courseid, groupid, userid,"
            " modulename, eventtype, timestart, uuid) SELECT 'Meeting', '', 1, courseid, id,"
            " 0, '', 'group', 0, '' FROM mdl_groups WHERE id = :g",
            g=group,
        )
    for course, grouping in (("MATH101", "Tutorials"), ("PHYS101", "Labs")):
        site.execute(
            "INSERT INTO mdl_course_modules (course, module, instance, section, groupingid)"
            " SELECT c.id, 1, 1, 1, gr.id FROM mdl_course c JOIN mdl_groupings gr"
            " ON gr.courseid = c.id WHERE c.idnumber = :c AND gr.name = :n",
            c=course,
            n=grouping,
        )
    site.execute("UPDATE mdl_course SET cacherev = 5")
    site.execute(
        "UPDATE mdl_groups SET picture = 1 WHERE name = 'G2' AND courseid ="
        " (SELECT id FROM mdl_course WHERE idnumber = 'CHEM201')"
    )
    fill_g1(site)
    cleanup_playbook(site, "{groupings: true, groups: all_empty}")
    result = site.run()
    assert result.code == 0, result.out
    assert deletions(result.out) == ['delete group "G2" in course MATH101  (idnumber MATH101-G2)']
    assert (
        'kept 1 empty group: "G2" in course CHEM201 (it has a picture or files, which only'
        " Moodle deletes)" in result.out
    )
    assert site.query("SELECT groupid FROM mdl_event") == [(g1,)]
    assert site.query(
        "SELECT c.idnumber, m.groupingid = 0, c.cacherev > 5 FROM mdl_course_modules m"
        " JOIN mdl_course c ON c.id = m.course ORDER BY 1"
    ) in (
        [("MATH101", True, True), ("PHYS101", False, False)],
        [("MATH101", 1, 1), ("PHYS101", 0, 0)],
    )
    # the others keep theirs: CHEM201's moved for its new group member (as Moodle's
    # groups_add_member does from 4.5.1; db init's site is the newest release)
    assert site.query("SELECT idnumber FROM mdl_course WHERE cacherev <> 5 ORDER BY 1") == [
        ("CHEM201",),
        ("MATH101",),
    ]


def test_a_group_with_files_in_its_description_is_kept(site: Site) -> None:
    """Its files are Moodle's to delete; a description merely mentioning a percent
    sign is no file (the pattern is bound as a parameter, never spliced in)."""
    site.execute(
        "UPDATE mdl_groups SET description = 'Week 1 <img src=\"@@PLUGINFILE@@/map.png\">'"
        " WHERE name = 'G2' AND courseid = (SELECT id FROM mdl_course WHERE idnumber = 'MATH101')"
    )
    site.execute(
        "UPDATE mdl_groups SET description = '100% online'"
        " WHERE name = 'G2' AND courseid = (SELECT id FROM mdl_course WHERE idnumber = 'CHEM201')"
    )
    fill_g1(site)
    cleanup_playbook(site, "{groups: all_empty}")
    result = site.run()
    assert result.code == 0, result.out
    assert 'kept 1 empty group: "G2" in course MATH101 (it has a picture or files' in result.out
    assert groups(site, "MATH101") == ["G1", "G2"]
    assert groups(site, "CHEM201") == ["G1"]


def test_a_group_given_a_member_after_the_plan_stays(site: Site, tmp_path: Path) -> None:
    """Planned as empty, then given a member (in Moodle) before the deletion: the
    deleting transaction checks again, keeps it, says so and journals nothing of it."""
    fill_g1(site)
    cleanup_playbook(site, "{groups: all_empty}")
    run, go = paused("run", site.root / "playbook.yml", point="groups.delete", where=tmp_path)
    site.add_member("MATH101", "U0002", "G2")
    go.touch()
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, out + err
    assert 'delete group "G2" in course MATH101  (idnumber MATH101-G2, kept: it has members' in out
    assert groups(site, "MATH101") == ["G1", "G2"]
    assert groups(site, "CHEM201") == ["G1"]
    (chem,) = site.query("SELECT id FROM mdl_course WHERE idnumber = 'CHEM201'")[0]
    (part,) = (site.area / ".postsync" / "runs").glob("*/*clean_empty_groups.journal")
    lines = [json.loads(line) for line in part.read_text().splitlines()]
    assert [(line["kind"], line["courseid"], line["name"]) for line in lines] == [
        ("group_deleted", chem, "G2")
    ]
