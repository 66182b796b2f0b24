"""clean_empty_groups: which empty groups go (`groups`, `exclude`, `min_age_days`), through
`postsync run` on SQLite, PostgreSQL and MariaDB.

By default only the groups a feed made go: the teacher's group made in Moodle stays,
however empty. The demo site's own groups (G1, G2 of each course, with idnumbers) were
made in Moodle too."""

from __future__ import annotations

from tests.sync.conftest import Site
from tests.treatments.test_groups import HEADER, cleanup_playbook, deletions, groups

GROUPS_STEP = "  - command: groups\n    file: groups.csv\n"
TEACHERS = "Projet tutoré (créé par l'enseignant)"
DAY = 86400


def teacher_group(site: Site, course: str, name: str, idnumber: str = "", **row: int) -> int:
    """A group made in Moodle (by a teacher): no feed made it."""
    (cid,) = site.query("SELECT id FROM mdl_course WHERE idnumber = :c", c=course)[0]
    columns = {"timecreated": 1_700_000_000, **row}
    names = ", ".join(columns)
    site.execute(
        "INSERT INTO mdl_groups (courseid, idnumber, name, description, descriptionformat,"
        f" picture, visibility, participation, timemodified, {names}) VALUES (:c, :i, :n, '',"
        f" 1, 0, 0, 1, 0, {', '.join(':' + k for k in columns)})",
        c=cid,
        i=idnumber,
        n=name,
        **columns,
    )
    return int(site.query("SELECT MAX(id) FROM mdl_groups")[0][0])


def step_line(out: str) -> str:
    return next(line for line in out.splitlines() if "cleanup" in line)


def preview_then_run(site: Site) -> tuple[str, str]:
    """The cleanup's step line and items of a preview (which changes nothing), then of
    the run; they must be the same."""
    before = site.dump()
    preview = site.run("--check")
    assert site.dump() == before
    real = site.run()
    assert real.code == preview.code == 0, real.out + real.err
    assert deletions(preview.out) == deletions(real.out)
    assert step_line(preview.out) == step_line(real.out)
    return step_line(real.out), real.out


def test_by_default_only_the_groups_a_feed_made_go(site: Site) -> None:
    teacher_group(site, "MATH101", TEACHERS)
    site.write(
        "enrols.csv",
        HEADER + "add;MATH101;U0001;student;;;;gaddcreate;Feed A;\n"
        "add;MATH101;U0002;student;;;;gaddcreate;Feed B;\n",
    )
    cleanup_playbook(site)
    first = site.run()
    assert first.code == 0, first.out
    assert deletions(first.out) == []
    assert "no empty group to delete in the 1 processed course; kept 3 empty groups:" in first.out
    assert f'"{TEACHERS}" in course MATH101 (no feed made it)' in first.out
    # the next night's feed empties Feed A: a group a feed made, in an earlier run
    site.write("enrols.csv", HEADER + "del;MATH101;U0001;student;;;;;;\n")
    line, out = preview_then_run(site)
    assert deletions(out) == ['delete group "Feed A" in course MATH101']
    assert line.startswith("CHANGED  cleanup  (1 empty group in the 1 processed course; kept 3")
    assert groups(site, "MATH101") == ["Feed B", "G1", "G2", TEACHERS]
    assert site.query(
        "SELECT COUNT(*) FROM postsync_groups p JOIN mdl_groups g ON g.id = p.itemid"
        " WHERE p.tablename = 'groups'"
    ) == [(1,)]  # Feed B's; Feed A's went with it
    again = site.run()
    assert again.code == 0
    assert deletions(again.out) == []
    assert "OK       cleanup  (no empty group to delete" in again.out


def test_all_empty_deletes_the_teachers_groups_too(site: Site) -> None:
    teacher_group(site, "MATH101", TEACHERS)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;gadd;G1;\n")
    cleanup_playbook(site)
    assert deletions(site.run("--check").out) == []
    cleanup_playbook(site, "{groups: all_empty}")
    _line, out = preview_then_run(site)
    assert deletions(out) == [
        'delete group "G2" in course MATH101  (idnumber MATH101-G2)',
        f'delete group "{TEACHERS}" in course MATH101',
    ]
    assert groups(site, "MATH101") == ["G1"]


def test_with_idnumber_takes_the_groups_that_have_one(site: Site) -> None:
    teacher_group(site, "MATH101", TEACHERS)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;gadd;G1;\n")
    cleanup_playbook(site, "{groups: with_idnumber}")
    line, out = preview_then_run(site)
    assert deletions(out) == ['delete group "G2" in course MATH101  (idnumber MATH101-G2)']
    assert f'kept 1 empty group: "{TEACHERS}" in course MATH101 (no feed made it, no idnumber)' in (
        line
    )
    assert groups(site, "MATH101") == ["G1", TEACHERS]


def test_a_group_a_groups_file_named_is_the_feeds_in_later_runs(site: Site) -> None:
    """A groups file that names a teacher's group (giving it an idnumber) takes it
    over: kept while a groups file of the run names it, deleted once empty after."""
    teacher_group(site, "MATH101", "Lab")
    site.write("groups.csv", "courseid;name;idnumber\nMATH101;Lab;MATH101-LAB\n")
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;gadd;G1;\n")
    steps = GROUPS_STEP + "  - command: enrolments\n    file: enrols*.csv\n"
    cleanup_playbook(site, steps=steps)
    first = site.run()
    assert first.code == 0, first.out
    assert '"Lab" in course MATH101 (groups.csv declares it)' in first.out
    (site.area / "groups.csv").unlink()
    _line, out = preview_then_run(site)
    assert deletions(out) == ['delete group "Lab" in course MATH101  (idnumber MATH101-LAB)']
    assert groups(site, "MATH101") == ["G1", "G2"]


def test_exclude_keeps_the_groups_a_glob_matches_by_name_or_idnumber(site: Site) -> None:
    teacher_group(site, "MATH101", TEACHERS)
    teacher_group(site, "MATH101", "Other")
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;gadd;G1;\n")
    cleanup_playbook(site, "{groups: all_empty, exclude: ['projet*', '*-g2']}")
    line, out = preview_then_run(site)
    assert deletions(out) == ['delete group "Other" in course MATH101']
    assert "\"G2\" in course MATH101 (exclude '*-g2' matches it)" in line  # by idnumber
    assert f"\"{TEACHERS}\" in course MATH101 (exclude 'projet*' matches it)" in line
    assert groups(site, "MATH101") == ["G1", "G2", TEACHERS]


def test_min_age_days_keeps_the_groups_made_lately(site: Site) -> None:
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;gaddcreate;Fresh;\n")
    cleanup_playbook(site, "{min_age_days: 3}")
    assert site.run().code == 0
    site.write("enrols.csv", HEADER + "del;MATH101;U0001;student;;;;;;\n")
    line, out = preview_then_run(site)
    assert deletions(out) == []
    assert '"Fresh" in course MATH101 (created less than a day ago, less than min_age_days 3)' in (
        line
    )
    # two days later: still too young; four days later: it goes
    for days, gone in ((2, False), (4, True)):
        for table in ("mdl_groups", "postsync_groups"):
            site.execute(f"UPDATE {table} SET timecreated = timecreated - :d", d=2 * DAY)
        site.write("enrols.csv", HEADER + f"add;MATH101;U000{days};student;;;;;;\n")
        line, out = preview_then_run(site)
        if gone:
            assert deletions(out) == ['delete group "Fresh" in course MATH101']
        else:
            assert f"(created {days} days ago, less than min_age_days 3)" in line
    assert "Fresh" not in groups(site, "MATH101")


def test_a_recorded_id_another_group_has_since_is_not_the_feeds(site: Site) -> None:
    """A group the feed made is deleted in Moodle, and its id given to a teacher's new
    group (MySQL may give an id again after a restart): that group is no feed's."""
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;gaddcreate;Feed A;\n")
    cleanup_playbook(site)
    assert site.run().code == 0
    ((gid,),) = site.query("SELECT id FROM mdl_groups WHERE name = 'Feed A'")
    site.execute("DELETE FROM mdl_groups_members WHERE groupid = :g", g=gid)
    site.execute("DELETE FROM mdl_groups WHERE id = :g", g=gid)
    teacher_group(site, "MATH101", "Teacher", id=gid)
    site.write("enrols.csv", HEADER + "add;MATH101;U0002;student;;;;;;\n")
    line, out = preview_then_run(site)
    assert deletions(out) == []
    assert '"Teacher" in course MATH101 (no feed made it)' in line


def test_groupings_follow_the_same_rules(site: Site) -> None:
    """A grouping made in Moodle with no group stays; one a groups file made goes, and
    so does one it names (the preview knows it as the run does)."""
    (cid,) = site.query("SELECT id FROM mdl_course WHERE idnumber = 'MATH101'")[0]
    for name in ("Teacher set", "Taken over"):
        site.execute(
            "INSERT INTO mdl_groupings (courseid, name, idnumber, description,"
            " descriptionformat, configdata, timecreated, timemodified)"
            " VALUES (:c, :n, '', '', 0, '', 0, 0)",
            c=cid,
            n=name,
        )
    site.write(
        "groups.csv",
        "type;courseid;name;idnumber\ngrouping;MATH101;Feed set;FS\n"
        "grouping;MATH101;Taken over;TO\n",
    )
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;gadd;G1;\n")
    steps = GROUPS_STEP + "  - command: enrolments\n    file: enrols*.csv\n"
    cleanup_playbook(site, "{groupings: true}", steps=steps)
    line, out = preview_then_run(site)
    assert 'delete grouping "Feed set" in course MATH101  (idnumber FS)' in out
    assert 'delete grouping "Taken over" in course MATH101  (idnumber TO)' in out
    assert "Teacher set" not in out.replace(line, "")
    assert 'kept 1 grouping left with no group: "Teacher set" in course MATH101 (no feed' in line
    names = site.query("SELECT name FROM mdl_groupings ORDER BY name")
    assert names == [("Teacher set",)]


def test_bad_selection_parameters_are_located(site: Site) -> None:
    cleanup_playbook(site, "{groups: mine, exclude: 'Projet*', min_age_days: -1}")
    result = site.run()
    assert result.code == 4
    for key in ("groups", "exclude", "min_age_days"):
        assert f"post_treatments[0].clean_empty_groups.{key}:" in result.err, result.err
    cleanup_playbook(site, "{min_age_days: '{{ 2 - 5 }}'}")
    result = site.run()
    assert result.code == 4
    assert "min_age_days: renders to '-3', not an integer >= 0" in result.err, result.err
