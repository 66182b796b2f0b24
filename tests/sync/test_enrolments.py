"""The enrolments command through `postsync run`, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from tests.sync.conftest import ENROLMENTS_STEP, Site, another_site

HEADER = "cmd;cid;uid;rolename;enrol;starttime;endtime;gcmd;g1;g2\n"


def latest_record(site: Site) -> dict[str, Any]:
    runs = site.area / ".postsync" / "runs"
    newest = max(runs.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(newest.read_text())  # type: ignore[no-any-return]


def report(site: Site) -> list[str]:
    """The report lines of the newest run's first control file."""
    entry = latest_record(site)["control_files"][0]
    return (site.area / ".postsync" / "runs" / entry["report"]).read_text().splitlines()


def sync(site: Site, body: str, *args: str) -> list[str]:
    site.write("enrols.csv", HEADER + body)
    result = site.run(*args, steps=ENROLMENTS_STEP)
    assert result.code in (0, 2), result.err + result.out
    return report(site)


def test_add_enrols_with_role_and_is_idempotent(site: Site) -> None:
    lines = sync(site, "add;MATH101;U0001;student;manual;;;;;\n")
    assert lines == ["line 2: add student U0001 in MATH101: ok"]
    assert site.enrolled("MATH101", "U0001") == [("student", 0)]
    row = site.query(
        "SELECT ra.component, ra.itemid FROM mdl_role_assignments ra"
        " JOIN mdl_user u ON u.id = ra.userid WHERE u.idnumber = 'U0001'"
    )
    assert row == [("", 0)]  # a manual role assignment, as Moodle's manual plugin makes
    assert sync(site, "add;MATH101;U0001;student;manual;;;;;\n") == [
        "line 2: add student U0001 in MATH101: ok (unchanged)"
    ]


def test_short_lines_read_the_missing_values_as_empty(site: Site) -> None:
    """tool_sync's own samples leave trailing empty values out (`...;GROUP1A;` under a
    9-column header): the missing values are empty, as tool_sync reads them."""
    site.write(
        "enrols.csv",
        "cmd;cid;uid;rolename;enrol;gcmd;g1;g2;g3\n"
        "add;MATH101;U0005;student;manual;gaddcreate;GROUP1A;\n"
        "add;MATH101;U0006;student\n"
        "add;MATH101;U0007;student;manual;gadd;G1;G2;G3;extra\n",
    )
    result = site.run(steps=ENROLMENTS_STEP)
    assert result.code == 2, result.out
    assert report(site) == [
        "line 2: add student U0005 in MATH101: ok",
        "line 3: add student U0006 in MATH101: ok",
        "line 4: failed: 10 values for 9 columns",
    ]
    assert site.groups_of("MATH101", "U0005") == ["GROUP1A"]
    assert site.enrolled("MATH101", "U0006") == [("student", 0)]
    assert site.groups_of("MATH101", "U0006") == []


def add_instance(site: Site, course: str, plugin: str, status: int = 0) -> int:
    site.execute(
        "INSERT INTO mdl_enrol (enrol, status, courseid, sortorder, roleid, enrolperiod,"
        " enrolstartdate, enrolenddate, expirynotify, expirythreshold, notifyall,"
        " timecreated, timemodified) SELECT :plugin, :status, id, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0"
        " FROM mdl_course WHERE idnumber = :course",
        plugin=plugin,
        status=status,
        course=course,
    )
    (instance,) = site.query(
        "SELECT e.id FROM mdl_enrol e JOIN mdl_course c ON c.id = e.courseid"
        " WHERE c.idnumber = :course AND e.enrol = :plugin",
        course=course,
        plugin=plugin,
    )[0]
    return int(instance)


def child_context(site: Site, course: str, instance: int, level: int = 70) -> int:
    """A context below the course's (an activity: level 70), as Moodle paths it."""
    (_, path, depth) = site.query(
        "SELECT x.id, x.path, x.depth FROM mdl_context x JOIN mdl_course c ON c.id ="
        " x.instanceid AND x.contextlevel = 50 WHERE c.idnumber = :course",
        course=course,
    )[0]
    site.execute(
        "INSERT INTO mdl_context (contextlevel, instanceid, path, depth, locked)"
        " VALUES (:level, :instance, NULL, :depth, 0)",
        level=level,
        instance=instance,
        depth=depth + 1,
    )
    (new,) = site.query(
        "SELECT id FROM mdl_context WHERE contextlevel = :level AND instanceid = :instance",
        level=level,
        instance=instance,
    )[0]
    site.execute("UPDATE mdl_context SET path = :p WHERE id = :id", p=f"{path}/{new}", id=new)
    return int(new)


def give_role(site: Site, user: str, context: int, role: str = "editingteacher") -> None:
    site.execute(
        "INSERT INTO mdl_role_assignments (roleid, contextid, userid, timemodified,"
        " modifierid, component, itemid, sortorder) SELECT r.id, :context, u.id, 0, 0, '', 0, 0"
        " FROM mdl_role r, mdl_user u WHERE r.shortname = :role AND u.idnumber = :user",
        context=context,
        role=role,
        user=user,
    )


def access(site: Site, user: str, course: str) -> None:
    site.execute(
        "INSERT INTO mdl_user_lastaccess (userid, courseid, timeaccess) SELECT u.id, c.id, 5"
        " FROM mdl_user u, mdl_course c WHERE u.idnumber = :user AND c.idnumber = :course",
        user=user,
        course=course,
    )


def roles_of(site: Site, user: str) -> list[tuple[int, str]]:
    return site.query(
        "SELECT ra.contextid, r.shortname FROM mdl_role_assignments ra JOIN mdl_role r ON"
        " r.id = ra.roleid JOIN mdl_user u ON u.id = ra.userid WHERE u.idnumber = :user"
        " ORDER BY ra.contextid, r.shortname",
        user=user,
    )


def test_the_last_unenrolment_removes_what_moodles_unenrol_removes(site: Site) -> None:
    """Removing a user's last enrolment in a course removes, as unenrol_user does, their
    roles in the contexts below the course (an activity, and a block inside it) and
    their last access to the course; nothing of another course or another user."""
    sync(site, "add;MATH101;U0001;student;;;;;;\nadd;MATH101;U0002;student;;;;;;\n")
    sync(site, "add;PHYS102;U0001;student;;;;;;\n")
    activity = child_context(site, "MATH101", 9001)
    block = child_context(site, "MATH101", 9002, level=80)
    site.execute(
        "UPDATE mdl_context SET path = (SELECT path FROM mdl_context WHERE id = :a)"
        " || '/' || id, depth = 5 WHERE id = :b"
        if not site.url.startswith("mysql")
        else "UPDATE mdl_context SET path = CONCAT(:path, '/', id), depth = 5 WHERE id = :b",
        a=activity,
        b=block,
        path=site.query("SELECT path FROM mdl_context WHERE id = :a", a=activity)[0][0],
    )
    elsewhere = child_context(site, "PHYS102", 9003)
    for user in ("U0001", "U0002"):
        give_role(site, user, activity)
        access(site, user, "MATH101")
    give_role(site, "U0001", block, "teacher")
    give_role(site, "U0001", elsewhere)
    access(site, "U0001", "PHYS102")
    assert sync(site, "del;MATH101;U0001;student;;;;;;\n") == [
        "line 2: del student U0001 in MATH101: ok"
    ]
    assert site.enrolled("MATH101", "U0001") == []
    course = site.query(
        "SELECT x.id FROM mdl_context x JOIN mdl_course c ON c.id = x.instanceid"
        " AND x.contextlevel = 50 WHERE c.idnumber = 'PHYS102'"
    )[0][0]
    assert roles_of(site, "U0001") == [(course, "student"), (elsewhere, "editingteacher")]
    assert (activity, "editingteacher") in roles_of(site, "U0002")  # another user's
    assert site.query(
        "SELECT u.idnumber, c.idnumber FROM mdl_user_lastaccess a JOIN mdl_user u"
        " ON u.id = a.userid JOIN mdl_course c ON c.id = a.courseid ORDER BY 1, 2"
    ) == [("U0001", "PHYS102"), ("U0002", "MATH101")]
    # a del for a user not enrolled there removes nothing of theirs
    give_role(site, "U0003", activity)
    assert sync(site, "del;MATH101;U0003;student;;;;;;\n") == [
        "line 2: del student U0003 in MATH101: ok (unchanged)"
    ]
    assert roles_of(site, "U0003") == [(activity, "editingteacher")]


def test_the_role_component_is_the_plugins_as_moodle_makes_it(site: Site) -> None:
    """Moodle's enrol_user assigns the role as a manual one for plugins whose roles are
    not protected (manual, self, flatfile, paypal: their roles_protected() is false),
    tagged with the plugin and instance for the others (cohort, fee, database...)."""
    add_instance(site, "MATH101", "self")
    cohort = add_instance(site, "MATH101", "cohort")
    fee = add_instance(site, "MATH101", "fee")
    lines = sync(
        site,
        "add;MATH101;U0001;student;self;;;;;\nadd;MATH101;U0002;student;cohort;;;;;\n"
        "add;MATH101;U0003;student;fee;;;;;\n",
    )
    assert lines == [
        "line 2: add student U0001 in MATH101: ok",
        "line 3: add student U0002 in MATH101: ok",
        "line 4: add student U0003 in MATH101: ok",
    ]
    assert site.query(
        "SELECT u.idnumber, ra.component, ra.itemid FROM mdl_role_assignments ra"
        " JOIN mdl_user u ON u.id = ra.userid WHERE u.idnumber IN ('U0001', 'U0002', 'U0003')"
        " ORDER BY u.idnumber"
    ) == [("U0001", "", 0), ("U0002", "enrol_cohort", cohort), ("U0003", "enrol_fee", fee)]


def test_a_disabled_instance_fails_the_line_unless_allowed(site: Site) -> None:
    add_instance(site, "MATH101", "self", status=1)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;self;;;;;\n")
    result = site.run(steps=ENROLMENTS_STEP)
    assert result.code == 2, result.out
    assert report(site) == [
        "line 2: add student U0001 in MATH101: failed: the self enrolment instance of course"
        " MATH101 is disabled in Moodle (enable it, or set allow_disabled_instances: true)"
    ]
    assert site.enrolled("MATH101", "U0001") == []
    allowed = ENROLMENTS_STEP + "    allow_disabled_instances: true\n"
    result = site.run(steps=allowed)
    assert result.code == 0, result.out
    assert site.enrolled("MATH101", "U0001") == [("student", 0)]
    # removing goes through a disabled instance: nothing is left behind
    site.write("enrols.csv", HEADER + "del;MATH101;U0001;student;self;;;;;\n")
    result = site.run(steps=ENROLMENTS_STEP)
    assert result.code == 0, result.out
    assert site.enrolled("MATH101", "U0001") == []


def test_add_creates_a_missing_manual_instance_with_moodle_defaults(site: Site) -> None:
    site.execute(
        "DELETE FROM mdl_enrol WHERE courseid ="
        " (SELECT id FROM mdl_course WHERE idnumber = 'PHYS101')"
    )
    sync(site, "add;PHYS101;U0001;student;;;;;;\n")
    assert site.query(
        "SELECT e.enrol, e.status, e.sortorder, e.expirythreshold, r.shortname FROM mdl_enrol e"
        " JOIN mdl_course c ON c.id = e.courseid JOIN mdl_role r ON r.id = e.roleid"
        " WHERE c.idnumber = 'PHYS101'"
    ) == [("manual", 0, 0, 86400, "student")]
    assert site.enrolled("PHYS101", "U0001") == [("student", 0)]


def test_del_last_role_removes_enrolment_and_groups(site: Site) -> None:
    sync(site, "add;MATH101;U0002;student;;;;gaddcreate;G1;G2\nadd;MATH101;U0002;teacher;;;;;;\n")
    assert site.groups_of("MATH101", "U0002") == ["G1", "G2"]
    sync(site, "del;MATH101;U0002;teacher;;;;;;\n")
    assert site.enrolled("MATH101", "U0002") == [("student", 0)]
    assert site.groups_of("MATH101", "U0002") == ["G1", "G2"]
    lines = sync(site, "del;MATH101;U0002;student;;;;;;\n")
    assert lines == ["line 2: del student U0002 in MATH101: ok"]
    assert site.enrolled("MATH101", "U0002") == []
    assert site.groups_of("MATH101", "U0002") == []
    assert sync(site, "delete;MATH101;U0002;student;;;;;;\n") == [
        "line 2: delete student U0002 in MATH101: ok (unchanged)"
    ]


def test_shift_replaces_roles(site: Site) -> None:
    sync(site, "add;CHEM201;U0003;student;;;;;;\nadd;CHEM201;U0003;teacher;;;;;;\n")
    sync(site, "shift;CHEM201;U0003;editingteacher;;;;;;\n")
    assert site.enrolled("CHEM201", "U0003") == [("editingteacher", 0)]


def test_enable_disable(site: Site) -> None:
    sync(site, "add;HIST101;U0004;student;;;;;;\n")
    assert sync(site, "disable;HIST101;U0004;student;;;;;;\n") == [
        "line 2: disable student U0004 in HIST101: ok"
    ]
    assert site.enrolled("HIST101", "U0004") == [("student", 1)]
    sync(site, "enable;HIST101;U0004;;;;;;;\n")
    assert site.enrolled("HIST101", "U0004") == [("student", 0)]
    assert sync(site, "enable;HIST101;U0005;;;;;;;\n") == [
        "line 2: enable - U0005 in HIST101: failed: U0005 is not enrolled in HIST101 by manual"
    ]


def test_start_and_end_times(site: Site) -> None:
    site.root.joinpath("playbook.yml")
    site.write(
        "enrols.csv", HEADER + "add;MATH101;U0006;student;;2026-09-01 08:00:00;1790000000;;;\n"
    )
    extra = "timezone: UTC\n"
    site.playbook(ENROLMENTS_STEP, extra=extra)
    assert site.cli("run", site.root / "playbook.yml").code == 0
    assert site.query(
        "SELECT ue.timestart, ue.timeend FROM mdl_user_enrolments ue"
        " JOIN mdl_user u ON u.id = ue.userid WHERE u.idnumber = 'U0006'"
    ) == [(1788249600, 1790000000)]


@pytest.mark.parametrize(
    "gcmd,groups,expected",
    [
        ("gadd", "G1;", ["G1"]),
        ("gaddcreate", "Nouveau;G2", ["G1", "G2", "Nouveau"]),
        ("greplace", "G2;", ["G2"]),
        ("greplacecreate", "Autre;", ["Autre"]),
        ("gdel", "G1;", []),
    ],
)
def test_group_commands(site: Site, gcmd: str, groups: str, expected: list[str]) -> None:
    sync(site, "add;MATH102;U0007;student;;;;gadd;G1;\n")
    assert site.groups_of("MATH102", "U0007") == ["G1"]
    lines = sync(site, f"add;MATH102;U0007;student;;;;{gcmd};{groups}\n")
    assert lines[0].endswith(": ok") or lines[0].endswith("(unchanged)")
    assert site.groups_of("MATH102", "U0007") == expected
    created = site.query("SELECT timecreated > 0, idnumber FROM mdl_groups WHERE name = 'Nouveau'")
    assert created in ([], [(True, "")], [(1, "")])


@pytest.mark.parametrize(
    "line,message",
    [
        ("add;MATH101;U9999;student;;;;;;", "no such user (idnumber U9999)"),
        ("add;MATH101;U0300;student;;;;;;", "no such user (idnumber U0300)"),  # deleted user
        ("add;NOPE101;U0001;student;;;;;;", "no such course (idnumber NOPE101)"),
        ("add;MATH101;U0001;wizard;;;;;;", "no such role 'wizard'"),
        ("add;MATH101;U0001;;;;;;;", "empty rolename"),
        ("add;;U0001;student;;;;;;", "empty cid"),
        ("add;MATH101;;student;;;;;;", "empty uid"),
        (
            "add;MATH101;U0001;student;;31/12/2026;;;;",
            "bad starttime '31/12/2026' (expected YYYY-MM-DD hh:mm:ss or a Unix time)",
        ),
        (
            "frob;MATH101;U0001;student;;;;;;",
            "unknown cmd 'frob' (add, del, shift, enable, disable)",
        ),
        ("add;MATH101;U0001;student;self;;;;;", "no self enrolment instance in course MATH101"),
        ("add;MATH101;U0001", "empty rolename"),
        ("add;MATH101;U0001;student;;;;;;;;", "12 values for 10 columns"),
    ],
)
def test_failing_lines(site: Site, line: str, message: str) -> None:
    before = site.dump()
    site.write("enrols.csv", HEADER + line + "\nadd;MATH101;U0008;student;;;;;;\n")
    result = site.run(steps=ENROLMENTS_STEP)
    assert result.code == 2
    assert "RECAP ok=0 changed=1 skipped=0 failed=0 | lines: 1 ok, 1 failed" in result.out
    lines = report(site)
    assert lines[0].endswith(f": failed: {message}")
    assert lines[1] == "line 3: add student U0008 in MATH101: ok"  # the others go on
    after = site.dump()
    changed = {t for t in after if after[t] != before[t]}
    # U0008's line only (its enrolment, role, and dirty flag)
    assert changed == {"mdl_user_enrolments", "mdl_role_assignments", "mdl_cache_flags"}


def test_preview_reports_the_run_and_changes_nothing(site: Site) -> None:
    body = (
        "add;MATH101;U0010;student;;;;gaddcreate;Preview;\n"
        "add;MATH101;U9999;student;;;;;;\n"
        "del;MATH101;U0010;student;;;;;;\n"
        "add;PHYS102;U0011;teacher;;;;gadd;G1;G2\n"
    )
    site.write("enrols.csv", HEADER + body)
    site.playbook(ENROLMENTS_STEP)
    before = site.dump()
    preview = site.cli("run", site.root / "playbook.yml", "--check", "--output", "json")
    assert site.dump() == before
    assert not (site.area / ".postsync").exists()  # a preview writes no record
    real = site.cli("run", site.root / "playbook.yml", "--output", "json")
    assert (
        report(site)[1]
        == "line 3: add student U9999 in MATH101: failed: no such user (idnumber U9999)"
    )
    assert preview.code == real.code == 2
    p, r = json.loads(preview.out), json.loads(real.out)
    timing = ("started", "duration_s")  # when each ran: the only difference
    assert [{k: v for k, v in s.items() if k not in timing} for s in p["steps"]] == [
        {k: v for k, v in s.items() if k not in timing} for s in r["steps"]
    ]
    assert (
        p["recap"]
        == r["recap"]
        == {
            "ok": 0,
            "changed": 1,
            "warning": 0,
            "skipped": 0,
            "failed": 0,
            "ignored": 0,
            "lines_ok": 3,
            "lines_failed": 1,
        }
    )


def test_reapplying_a_file_changes_nothing(site: Site) -> None:
    body = "".join(
        f"add;{c};U{u:04d};student;;;;gaddcreate;Team{u % 3};\n"
        for c in ("MATH101", "BIOL201")
        for u in range(20, 60)
    )
    first = sync(site, body)
    assert all(line.endswith(": ok") for line in first)
    before = site.dump()
    second = sync(site, body)
    assert all(line.endswith(": ok (unchanged)") for line in second)
    after = site.dump()
    assert after == before


def test_batches_see_the_lines_before_them(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    import runner.sync.apply

    monkeypatch.setattr(runner.sync.apply, "BATCH", {"": 2})
    lines = sync(
        site,
        "add;MATH101;U0012;student;;;;gaddcreate;X;\n"
        "add;MATH101;U0012;teacher;;;;;;\n"
        "del;MATH101;U0012;student;;;;;;\n"
        "del;MATH101;U0012;teacher;;;;;;\n"
        "add;MATH101;U0012;student;;;;;;\n",
    )
    assert [line.rsplit(": ", 1)[1] for line in lines] == ["ok"] * 5
    assert site.enrolled("MATH101", "U0012") == [("student", 0)]
    assert site.groups_of("MATH101", "U0012") == []


def test_keys_by_shortname_username_and_email(site: Site) -> None:
    site.write("enrols.csv", "cid;uid;rolename\nMATH101;u0013;student\n")
    step = ENROLMENTS_STEP + "    course_key: shortname\n    user_key: username\n"
    assert site.run(steps=step).code == 0
    assert site.enrolled("MATH101", "U0013") == [("student", 0)]
    site.write("enrols.csv", "cid;uid;rolename\n5;u0014@example.org;student\n")
    step = ENROLMENTS_STEP + "    course_key: id\n    user_key: email\n"
    assert site.run(steps=step).code == 0
    (course,) = site.query("SELECT idnumber FROM mdl_course WHERE id = 5")
    assert site.enrolled(course[0], "U0014") == [("student", 0)]


def test_record_validates_and_holds_failed_lines(site: Site) -> None:
    from jsonschema import Draft202012Validator

    from runner.record.schema import record_schema

    sync(site, "add;MATH101;U0015;student;;;;;;\nadd;MATH101;U9999;student;;;;;;\n")
    record = latest_record(site)
    Draft202012Validator(record_schema()).validate(record)
    (entry,) = record["control_files"]
    assert entry["lines"] == {"total": 2, "changed": 1, "unchanged": 0, "failed": 1, "partly": 0}
    assert entry["failed_lines"][0]["number"] == 3
    assert entry["failed_lines"][0]["text"] == "add;MATH101;U9999;student;;;;;;"
    assert entry["processed_courses"][0]["key"] == "MATH101"
    assert (
        entry["sha256"]
        == __import__("hashlib").sha256((site.area / "enrols.csv").read_bytes()).hexdigest()
    )


def test_no_matching_file_skips(site: Site) -> None:
    result = site.run(steps=ENROLMENTS_STEP)
    assert result.code == 0
    assert "SKIPPED  enrolments  (no file matches enrols*.csv)" in result.out


def test_retry_files_are_not_picked_up_by_a_glob(site: Site) -> None:
    site.write("enrols_tryback_20261124-0100.csv", HEADER + "add;MATH101;U0016;student;;;;;;\n")
    assert "SKIPPED" in site.run(steps=ENROLMENTS_STEP).out
    step = ENROLMENTS_STEP + "    include_retry_files: true\n"
    assert "sync enrols_tryback_20261124-0100.csv" in site.run(steps=step).out
    named = "  - command: enrolments\n    file: enrols_tryback_20261124-0100.csv\n"
    assert "sync enrols_tryback_20261124-0100.csv" in site.run(steps=named).out


def test_missing_sqlite_database(tmp_path: Path, cli: object) -> None:
    from tests.conftest import Result

    (tmp_path / "area").mkdir()
    (tmp_path / "area" / "enrols.csv").write_text(HEADER)
    (tmp_path / "p.yml").write_text(
        "name: x\narea: area\ndatabase: sqlite:///nowhere.db\nsync:\n" + ENROLMENTS_STEP
    )
    result: Result = cli("run", tmp_path / "p.yml")  # type: ignore[operator]
    assert result.code == 3
    assert f"database file {tmp_path / 'nowhere.db'} does not exist" in result.out
    assert not (tmp_path / "nowhere.db").exists()


ODD_IDNUMBERS = ['O"Brien', "back\\slash", "a,b", "{braces}", "NULL", "é ü", "x'y"]


def test_identifiers_with_quotes_commas_braces_and_backslashes(site: Site) -> None:
    """Keys travel to PostgreSQL as array literals: every character must survive."""
    for n, idnumber in enumerate(ODD_IDNUMBERS):
        site.execute(
            "UPDATE mdl_user SET idnumber = :idnumber WHERE idnumber = :old",
            idnumber=idnumber,
            old=f"U{n + 1:04d}",
        )
    fields = ['"' + i.replace('"', '""') + '"' if '"' in i else i for i in ODD_IDNUMBERS]
    body = "".join(f"add;MATH101;{field};student;;;;;;\n" for field in fields)
    lines = sync(site, body)
    assert all(line.endswith(": ok") for line in lines), lines
    for idnumber in ODD_IDNUMBERS:
        assert site.enrolled("MATH101", idnumber) == [("student", 0)]
    assert sync(site, body) == [line.replace(": ok", ": ok (unchanged)") for line in lines]


def _mixed_file(lines: int) -> str:
    """Lines that come back to the same few (user, course) pairs again and again:
    every kind of command, times, groups, and some failing lines."""
    import random

    rnd = random.Random(6)
    body = []
    for _ in range(lines):
        cmd = rnd.choice(["add", "add", "add", "del", "shift", "enable", "disable"])
        course = rnd.choice(["MATH101", "BIOL201", "HIST101"])
        user = f"U{rnd.choice([1, 2, 3, 4, 9999]):04d}"
        role = rnd.choice(["student", "student", "teacher"])
        start = rnd.choice(["", "", "1790000000", "1790000500"])
        gcmd, group = rnd.choice(
            [("", ""), ("gaddcreate", "A"), ("gaddcreate", "B"), ("gdel", "A"), ("greplace", "B")]
        )
        body.append(f"{cmd};{course};{user};{role};;{start};;{gcmd};{group};\n")
    return "".join(body)


def _canonical(site: Site) -> dict[str, list[tuple[Any, ...]]]:
    """The sync's tables without their ids (which depend on the order rows were written)."""
    queries = {
        "enrolments": "SELECT enrolid, userid, status, timestart, timeend FROM mdl_user_enrolments",
        "roles": "SELECT contextid, userid, roleid, component, itemid FROM mdl_role_assignments",
        "members": "SELECT g.courseid, g.name, m.userid FROM mdl_groups_members m"
        " JOIN mdl_groups g ON g.id = m.groupid",
        "groups": "SELECT courseid, name FROM mdl_groups",
    }
    return {name: sorted(site.query(sql)) for name, sql in queries.items()}


def test_batch_size_changes_nothing(
    site: Site, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, cli: Any
) -> None:
    """Each batch is written while the next one is simulated, and takes the previous
    batch's state of the pairs they share: whatever the batch size, the same lines
    give the same outcomes and the same site (rows inserted by one batch and deleted
    or updated by the next, or the one after)."""
    import runner.sync.apply

    body = _mixed_file(300)
    outcomes = {}
    sites = {}
    for size in (2000, 1, 2, 3, 7):
        # a fresh site for each size
        here = site if size == 2000 else another_site(site, request, f"batch{size}")
        monkeypatch.setattr(runner.sync.apply, "BATCH", {"": size})
        outcomes[size] = sync(here, body)
        sites[size] = _canonical(here)
    assert sum(line.endswith(": ok") for line in outcomes[2000]) > 100
    assert sum("failed" in line for line in outcomes[2000]) > 30
    for size in (1, 2, 3, 7):
        assert outcomes[size] == outcomes[2000], size
        assert sites[size] == sites[2000], size


TRIGGERS = {
    "sqlite": "CREATE TRIGGER refuse BEFORE INSERT ON mdl_groups_members"
    " BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END",
    "postgresql": "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
    " $$ BEGIN RAISE EXCEPTION 'refused by a trigger'; END $$;"
    " CREATE TRIGGER refuse BEFORE INSERT ON mdl_groups_members"
    " FOR EACH ROW EXECUTE FUNCTION refuse()",
    "mariadb": "CREATE TRIGGER refuse BEFORE INSERT ON mdl_groups_members FOR EACH ROW"
    " SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by a trigger'",
}


@pytest.mark.parametrize("batch", [1, 3, 2000])
def test_a_write_refused_by_the_database_applies_nothing(
    site: Site, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, batch: int
) -> None:
    """A batch's writes fail (in the writer thread, while the next batch is simulated,
    or at the end): the run stops with exit 3 and nothing of the file is applied."""
    import runner.sync.apply

    kind = request.node.callspec.params["db_url"]
    engine = create_engine(site.url)
    with engine.begin() as conn:
        conn.exec_driver_sql(TRIGGERS[kind])
    engine.dispose()
    before = site.dump()
    monkeypatch.setattr(runner.sync.apply, "BATCH", {"": batch})
    site.write(
        "enrols.csv",
        HEADER
        + "add;MATH101;U0001;student;;;;;;\n" * 4
        + "add;MATH101;U0002;student;;;;gaddcreate;Late;\n"
        + "add;BIOL201;U0003;student;;;;;;\n" * 4,
    )
    result = site.run(steps=ENROLMENTS_STEP)
    assert result.code == 3, result.out + result.err
    assert "database error while applying enrols.csv (nothing of it was applied)" in result.out
    assert "refused by a trigger" in result.out
    assert site.dump() == before
    assert (site.area / "enrols.csv").exists()


def dirty_flags(site: Site) -> list[tuple[str, str, int]]:
    """(user idnumber, value, expiry - timemodified) of Moodle's dirty-user flags."""
    users = {str(i): idnumber for i, idnumber in site.query("SELECT id, idnumber FROM mdl_user")}
    flags = site.query(
        "SELECT name, value, expiry - timemodified FROM mdl_cache_flags"
        " WHERE flagtype = 'accesslib/dirtyusers'"
    )
    return sorted((users[name], value, span) for name, value, span in flags)


def test_changed_users_are_marked_dirty_as_moodle_marks_them(site: Site) -> None:
    """Every user whose enrolment, roles or groups a file changed gets Moodle's
    accesslib/dirtyusers flag (value 1, lasting the site's session timeout), so their
    open sessions reload; an existing flag is renewed, not doubled; an unchanged line
    and a preview mark nobody."""
    site.execute("INSERT INTO mdl_config (name, value) VALUES ('sessiontimeout', '7200')")
    (u2,) = site.query("SELECT id FROM mdl_user WHERE idnumber = 'U0002'")[0]
    site.execute(
        "INSERT INTO mdl_cache_flags (flagtype, name, timemodified, value, expiry)"
        " VALUES ('accesslib/dirtyusers', :name, 1, '1', 2)",
        name=str(u2),
    )
    body = "add;MATH101;U0001;student;;;;;;\nadd;MATH101;U0002;student;;;;gadd;G1;\n"
    site.write("enrols.csv", HEADER + body)
    assert site.run("--check", steps=ENROLMENTS_STEP).code == 0
    assert dirty_flags(site) == [("U0002", "1", 1)]  # the preview wrote nothing
    sync(site, body)
    assert dirty_flags(site) == [("U0001", "1", 7200), ("U0002", "1", 7200)]
    site.execute("DELETE FROM mdl_cache_flags")
    sync(site, body)  # unchanged: nobody's access changed
    assert dirty_flags(site) == []
    site.execute("DELETE FROM mdl_config")
    sync(site, "del;MATH101;U0001;student;;;;;;\n")
    assert dirty_flags(site) == [("U0001", "1", 8 * 3600)]  # Moodle's default timeout
