"""The change journal of the enrolments and group_members commands, through `postsync
run`: what it lists, the preview's, a rejected file's, a second run's, a killed run's."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from runner.record.journal import journal_schema, parts
from tests.conftest import POSTSYNC
from tests.sync.conftest import Site, another_site
from tests.sync.test_enrolments import HEADER, child_context, give_role, latest_record

STEPS = (
    "  - command: enrolments\n    file: enrols*.csv\n"
    "  - command: group_members\n    file: groupmembers.csv\n"
)
START = 1767225600  # 2026-01-01 00:00:00 UTC
FIRST = (
    "add;MATH101;U0001;student;manual;;;gadd;G1;\n"  # line 2
    "add;MATH101;U0002;student;manual;;;;;\n"  # line 3
)
SECOND = (
    f"add;MATH101;U0001;student;manual;{START};;;;\n"  # line 2: its start changes
    "del;MATH101;U0002;student;manual;;;;;\n"  # line 3: U0002's last enrolment
)
MEMBERS = (
    "courseid;groupid;userid;cmd\nMATH101;MATH101-G2;U0001;add\nMATH101;MATH101-G1;U0001;del\n"
)


def journal(site: Site, record: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The journal of the newest run (or of `record`'s): its parts in order, every line
    whole, each part the one its record entry names."""
    record = record or latest_record(site)
    run_dir = site.area / ".postsync" / "runs" / record["run_id"]
    found = []
    named = [
        (run_dir.parent / e["report"]).with_suffix(".journal")
        for e in record["control_files"]
        if e.get("journal")
    ]
    assert parts(run_dir) == named
    for path in named:
        data = path.read_bytes()
        assert data.endswith(b"\n")
        found += [json.loads(line) for line in data.decode("utf-8").splitlines()]
    return found


def ids(site: Site) -> dict[str, int]:
    """The demo site's ids the journal names."""
    found = {
        f"user {u}": i
        for i, u in site.query("SELECT id, idnumber FROM mdl_user WHERE idnumber LIKE 'U000%'")
    }
    found |= {f"group {n}": i for i, n in site.query("SELECT id, idnumber FROM mdl_groups")}
    [(course, context)] = site.query(
        "SELECT c.id, x.id FROM mdl_course c JOIN mdl_context x ON x.instanceid = c.id"
        " AND x.contextlevel = 50 WHERE c.idnumber = 'MATH101'"
    )
    [(enrol,)] = site.query(
        "SELECT id FROM mdl_enrol WHERE enrol = 'manual' AND courseid = :c", c=course
    )
    [(student,)] = site.query("SELECT id FROM mdl_role WHERE shortname = 'student'")
    return found | {"course": course, "context": context, "enrol": enrol, "student": student}


def without_ids(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "id"} for e in entries]


def run(site: Site, *args: str) -> dict[str, Any]:
    result = site.run(*args, steps=STEPS)
    assert result.code == 0, result.out + result.err
    return latest_record(site)


def test_journal_lists_each_change_with_its_line(site: Site) -> None:
    site.write("enrols.csv", HEADER + FIRST)
    assert site.run("--check", steps=STEPS).code == 0
    assert not list(site.area.rglob("journal.jsonl"))  # a preview writes nothing here
    record = run(site)
    i = ids(site)
    u1, u2, course, enrol = i["user U0001"], i["user U0002"], i["course"], i["enrol"]
    role = {"contextid": i["context"], "roleid": i["student"], "component": "", "itemid": 0}
    dates = {"status": 0, "timestart": 0, "timeend": 0}
    at = {"file": "enrols.csv", "courseid": course}
    first = journal(site, record)
    assert first == [
        {"seq": 1, "kind": "user_enrolment_created", **at, "line": 2}
        | {"enrolid": enrol, "userid": u1, **dates},
        {"seq": 2, "kind": "role_assigned", **at, "line": 2, "userid": u1, **role},
        {"seq": 3, "kind": "group_member_added", **at, "line": 2}
        | {"groupid": i["group MATH101-G1"], "userid": u1, "component": "", "itemid": 0},
        {"seq": 4, "kind": "user_enrolment_created", **at, "line": 3}
        | {"enrolid": enrol, "userid": u2, **dates},
        {"seq": 5, "kind": "role_assigned", **at, "line": 3, "userid": u2, **role},
    ]
    [entry] = record["control_files"]
    assert entry["journal"] == {
        "first": 1,
        "last": 5,
        "kinds": {"group_member_added": 1, "role_assigned": 2, "user_enrolment_created": 2},
    }

    site.write("enrols.csv", HEADER + SECOND)
    site.write("groupmembers.csv", MEMBERS)
    shown = site.run("--check", "--diff", steps=STEPS)
    assert shown.code == 0, shown.err
    assert "        journal, 4 lines:\n" in shown.out
    assert '"kind":"course_left"' in shown.out
    record = run(site)
    second = journal(site, record)
    [(ue1,)] = site.query("SELECT id FROM mdl_user_enrolments WHERE userid = :u", u=u1)
    [(m1,)] = site.query(
        "SELECT id FROM mdl_groups_members WHERE userid = :u AND groupid = :g",
        u=u1,
        g=i["group MATH101-G2"],
    )
    assert m1 and ue1
    members = {"file": "groupmembers.csv", "courseid": course}
    assert without_ids(second) == [
        {"seq": 1, "kind": "user_enrolment_updated", **at, "line": 2}
        | {"enrolid": enrol, "userid": u1, "before": dates, "after": dates | {"timestart": START}},
        {"seq": 2, "kind": "role_unassigned", **at, "line": 3, "userid": u2, **role},
        {"seq": 3, "kind": "user_enrolment_deleted", **at, "line": 3}
        | {"enrolid": enrol, "userid": u2, **dates},
        {"seq": 4, "kind": "course_left", **at, "line": 3}
        | {
            "contextid": i["context"],
            "userid": u2,
            "not_listed": ["user_lastaccess"],
        },
        {"seq": 1, "kind": "group_member_added", **members, "line": 2}
        | {"groupid": i["group MATH101-G2"], "userid": u1, "component": "", "itemid": 0},
        {"seq": 2, "kind": "group_member_removed", **members, "line": 3}
        | {"groupid": i["group MATH101-G1"], "userid": u1, "component": "", "itemid": 0},
    ]
    # deleted and updated rows carry their id: the rows the first run created
    assert second[0]["id"] == ue1
    assert all(isinstance(e["id"], int) for e in second if "id" in e)
    validator = Draft202012Validator(journal_schema())
    for line in first + second:
        validator.validate(line)
    for line in record["control_files"]:
        assert line["journal"] is not None

    record = run(site)  # a second run of the same files changes nothing
    assert journal(site, record) == []
    assert [f["journal"] for f in record["control_files"]] == [None, None]


@pytest.mark.parametrize("batch", [1, 8000])
def test_a_last_unenrolment_journals_each_role_below_the_course(
    site: Site, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    """The roles a last unenrolment takes in the contexts below the course (an activity
    of it, any component) are role_unassigned lines before its course_left, once even
    if the user leaves twice in a file (in one batch, or in batches whose writes wait),
    as the preview says; a role in another course's activity, or a user who stays, is
    not touched."""
    import runner.sync.apply

    monkeypatch.setattr(runner.sync.apply, "BATCH", {"": batch, "sqlite": batch})
    site.write("enrols.csv", HEADER + FIRST)
    run(site)
    site.write("enrols.csv", HEADER + "add;PHYS102;U0002;student;manual;;;;;\n")
    run(site)
    activity = child_context(site, "MATH101", 9001)
    elsewhere = child_context(site, "PHYS102", 9002)
    for user in ("U0001", "U0002"):
        give_role(site, user, activity)
    give_role(site, "U0002", elsewhere)
    again = "add;MATH101;U0002;student;manual;;;;;\ndel;MATH101;U0002;student;manual;;;;;\n"
    site.write("enrols.csv", HEADER + "del;MATH101;U0002;student;manual;;;;;\n" + again)
    preview = site.run("--check", "--diff", steps=STEPS)
    assert preview.code == 0, preview.err
    previewed = [
        json.loads(line) for line in preview.out.splitlines() if line.startswith(" " * 8 + "{")
    ]
    record = run(site)
    done = journal(site, record)
    i = ids(site)
    [(teacher,)] = site.query("SELECT id FROM mdl_role WHERE shortname = 'editingteacher'")
    below = [e for e in done if e["kind"] == "role_unassigned" and e["contextid"] == activity]
    assert [(e["line"], e["userid"], e["roleid"], e["component"]) for e in below] == [
        (2, i["user U0002"], teacher, "")
    ]
    assert isinstance(below[0]["id"], int)
    assert [(e["line"], e["kind"]) for e in done] == [
        (2, "role_unassigned"),
        (2, "user_enrolment_deleted"),
        (2, "role_unassigned"),  # the activity's
        (2, "course_left"),
        (3, "user_enrolment_created"),
        (3, "role_assigned"),
        (4, "role_unassigned"),
        (4, "user_enrolment_deleted"),
        (4, "course_left"),  # the activity's role went with line 2
    ]
    assert without_ids(previewed) == without_ids(done)
    left = site.query(
        "SELECT contextid FROM mdl_role_assignments WHERE userid = :u ORDER BY contextid",
        u=i["user U0002"],
    )
    assert activity not in [c for (c,) in left] and elsewhere in [c for (c,) in left]
    validator = Draft202012Validator(journal_schema())
    for line in done:
        validator.validate(line)


def test_the_preview_journals_what_the_run_does(site: Site, tmp_path: Path) -> None:
    """The preview's journal, printed by --diff, is the run's line for line (created
    rows have no id in either)."""
    site.write("enrols.csv", HEADER + FIRST + SECOND.replace(";;;;\n", ";;gadd;G2;\n", 1))
    site.write("groupmembers.csv", MEMBERS)
    preview = site.run("--check", "--diff", steps=STEPS)
    assert preview.code == 0, preview.err
    previewed = [
        json.loads(line) for line in preview.out.splitlines() if line.startswith(" " * 8 + "{")
    ]
    record = run(site, "--diff")
    done = journal(site, record)
    assert without_ids(previewed) == without_ids(done)
    assert [(e["line"], e["kind"]) for e in done] == [
        (2, "user_enrolment_created"),
        (2, "role_assigned"),
        (2, "group_member_added"),
        (3, "user_enrolment_created"),
        (3, "role_assigned"),
        (4, "user_enrolment_updated"),
        (4, "group_member_added"),
        (5, "role_unassigned"),
        (5, "user_enrolment_deleted"),
        (5, "course_left"),
        (3, "group_member_removed"),  # groupmembers.csv: its line 2 found U0001 in G2
    ]
    # rows created by the same file have no id yet; a preview's too (below zero: none)
    assert [e["id"] for e in done if "id" in e] == [None, None, None, done[-1]["id"]]
    # ids of rows created by the run aside: the preview's are none
    assert [e["id"] for e in previewed if "id" in e] == [None, None, None, None]


def test_diff_shows_twenty_journal_lines_then_counts(site: Site) -> None:
    site.write(
        "enrols.csv",
        HEADER + "".join(f"add;MATH101;U{n:04d};student;;;;;;\n" for n in range(1, 13)),
    )
    result = site.run("--diff", steps=STEPS)
    assert result.code == 0, result.err
    shown = [line for line in result.out.splitlines() if line.startswith(" " * 8 + "{")]
    assert len(shown) == 20
    run_id = latest_record(site)["run_id"]
    part = f".postsync/runs/{run_id}/001_enrols.csv.journal"
    assert f"        journal, 24 lines ({part}):\n" in result.out
    assert (
        "        ... and 4 more (in all: role_assigned 12, user_enrolment_created 12)\n"
        in result.out
    )


def test_a_rejected_file_leaves_no_journal_lines(site: Site) -> None:
    site.write("enrols1.csv", HEADER + FIRST)
    site.write("enrols2.csv", "cmd;nonsense\nadd;x\n")
    result = site.run(steps=STEPS)
    assert result.code != 0
    record = latest_record(site)
    assert [f["journal"] is None for f in record["control_files"]] == [False, True]
    assert {e["file"] for e in journal(site, record)} == {"enrols1.csv"}
    assert len(journal(site, record)) == 5


def _postsync(root: Path, *args: str, faults: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "POSTSYNC_FAULTS"}
    env["POSTSYNC_FAULTS"] = faults
    return subprocess.run(
        [*POSTSYNC, *args], cwd=root, env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    "point", ["sync.batch", "journal.publish", "sync.commit", "sync.committed"]
)
def test_a_killed_run_loses_no_journal_line_and_tells_none_twice(
    site: Site, request: pytest.FixtureRequest, point: str
) -> None:
    """Killed while the second file is applied, its journal part published, its marker
    written or its transaction just committed, then run again: the journal the records
    name is an unkilled run's (ids aside), every line whole, none twice, none missing
    (a committed file's part was published with it, and the run that recovers the file
    copies it)."""
    other = another_site(site, request, "traced")
    for each in (site, other):
        each.write("enrols1.csv", HEADER + FIRST)
        each.write("enrols2.csv", HEADER + "add;PHYS101;U0003;student;manual;;;;;\n")
        each.playbook(STEPS)
    trace = other.root / "trace"
    traced = _postsync(other.root, "run", "playbook.yml", faults=f"trace={trace}")
    assert traced.returncode == 0, traced.stderr
    reached = [line.split() for line in trace.read_text().splitlines()]
    second = [int(n) for n, name in reached if name == point][-1]
    killed = _postsync(site.root, "run", "playbook.yml", faults=f"kill={second}")
    assert killed.returncode == -9, killed.stderr
    again = _postsync(site.root, "run", "playbook.yml", faults="")
    assert again.returncode == 0, again.stdout + again.stderr
    expected = without_ids(journal(other))
    assert without_ids(journal(site)) == expected
    assert [e["file"] for e in expected] == ["enrols1.csv"] * 5 + ["enrols2.csv"] * 2


GROUPS_STEP = "  - command: groups\n    file: groups*.csv\n"
GROUPS_FILE = (
    "type;courseid;name;idnumber;description;selfgrouping;grouping\n"
    "grouping;MATH101;Grouping A;GRPA;first;;\n"  # line 2
    "group;MATH101;Group 1;TC1_GR1;a group;0;GRPA\n"  # line 3
)
GROUPS_UPDATE = "courseid;name;updateid;description\nMATH101;Group 1 Renamed;TC1_GR1;a group\n"


def test_groups_files_journal_the_groups_groupings_and_links_they_make(site: Site) -> None:
    """A groups file: the grouping and group it creates (with their ids), the link, and
    an update's new values; the preview tells the same (ids aside); again: nothing."""
    site.write("groups.csv", GROUPS_FILE)
    preview = site.run("--check", steps=GROUPS_STEP)
    assert preview.code == 0, preview.out + preview.err
    result = site.run(steps=GROUPS_STEP)
    assert result.code == 0, result.out + result.err
    entries = journal(site)
    [(course,)] = site.query("SELECT id FROM mdl_course WHERE idnumber = 'MATH101'")
    [(grouping,)] = site.query("SELECT id FROM mdl_groupings WHERE idnumber = 'GRPA'")
    [(group,)] = site.query("SELECT id FROM mdl_groups WHERE idnumber = 'TC1_GR1'")
    at = {"file": "groups.csv", "courseid": course}
    assert entries == [
        {"seq": 1, "kind": "grouping_created", **at, "line": 2, "id": grouping}
        | {"name": "Grouping A", "idnumber": "GRPA"},
        {"seq": 2, "kind": "group_created", **at, "line": 3, "id": group}
        | {"name": "Group 1", "idnumber": "TC1_GR1"},
        {"seq": 3, "kind": "grouping_group_assigned", **at, "line": 3}
        | {"groupingid": grouping, "groupid": group},
    ]
    site.write("groups.csv", GROUPS_FILE)
    assert site.run(steps=GROUPS_STEP).code == 0
    assert journal(site) == []
    site.write("groups.csv", GROUPS_UPDATE)
    assert site.run(steps=GROUPS_STEP).code == 0
    assert journal(site) == [
        {"seq": 1, "kind": "group_updated", **at, "line": 2, "id": group}
        | {"before": {"name": "Group 1"}, "after": {"name": "Group 1 Renamed"}},
    ]
    validator = Draft202012Validator(journal_schema())
    for line in entries:
        validator.validate(line)


def test_a_line_that_creates_a_group_and_an_instance_journals_them(site: Site) -> None:
    """gaddcreate makes a group; a course without a manual instance gets one."""
    site.execute(
        "DELETE FROM mdl_enrol WHERE courseid = (SELECT id FROM mdl_course"
        " WHERE idnumber = 'PHYS101')"
    )
    site.write("enrols.csv", HEADER + "add;PHYS101;U0001;student;manual;;;gaddcreate;Team X;\n")
    assert site.run(steps=STEPS).code == 0
    assert [e["kind"] for e in journal(site)] == [
        "enrol_instance_created",
        "user_enrolment_created",
        "role_assigned",
        "group_created",
        "group_member_added",
    ]
    assert {e["line"] for e in journal(site)} == {2}
    [(team,)] = site.query("SELECT id FROM mdl_groups WHERE name = 'Team X'")
    created = [e for e in journal(site) if e["kind"] == "group_created"]
    assert [(e["id"], e["name"], e["idnumber"]) for e in created] == [(team, "Team X", "")]


COHORTS_STEP = "  - command: cohorts\n    file: cohorts*.csv\n"


def test_cohorts_files_journal_cohorts_and_their_members(site: Site) -> None:
    """A cohort created with members, a member removed, the cohort deleted (its row as
    it was); the preview tells the same changes (ids aside); again: nothing."""
    body = "cmd;cname;userid;cdescription;cidnumber\nadd;COHORT1;U0001;;COH001\n"
    site.write("cohorts.csv", body)
    preview = site.run("--check", steps=COHORTS_STEP)
    assert preview.code == 0, preview.out + preview.err
    assert site.run(steps=COHORTS_STEP).code == 0
    first = journal(site)
    [(cohort, context)] = site.query(
        "SELECT id, contextid FROM mdl_cohort WHERE idnumber = 'COH001'"
    )
    [(u1,)] = site.query("SELECT id FROM mdl_user WHERE idnumber = 'U0001'")
    at = {"file": "cohorts.csv", "courseid": None, "line": 2}
    row = {"id": cohort, "contextid": context, "name": "COHORT1", "idnumber": "COH001"}
    assert first == [
        {"seq": 1, "kind": "cohort_created", **at, **row},
        {"seq": 2, "kind": "cohort_member_added", **at, "cohortid": cohort, "userid": u1},
    ]
    site.write("cohorts.csv", body)
    assert site.run(steps=COHORTS_STEP).code == 0
    assert journal(site) == []
    site.write("cohorts.csv", body.replace(";;COH001", ";First years;COH001"))
    assert site.run(steps=COHORTS_STEP).code == 0
    [updated] = journal(site)
    assert updated == {"seq": 1, "kind": "cohort_updated", **at, **row} | {
        "before": {"description": ""},
        "after": {"description": "First years"},
    }
    site.write("cohorts.csv", "cmd;userid;cidnumber\ndel;U0001;COH001\n")
    assert site.run(steps=COHORTS_STEP).code == 0
    [removed] = journal(site)
    assert removed["kind"] == "cohort_member_removed" and removed["userid"] == u1
    assert isinstance(removed["id"], int)  # the row the first run made
    site.write("cohorts.csv", "cmd;cidnumber\ndel;COH001\n")
    assert site.run(steps=COHORTS_STEP).code == 0
    assert journal(site) == [{"seq": 1, "kind": "cohort_deleted", **at, **row}]
    validator = Draft202012Validator(journal_schema())
    for line in [*first, updated, removed]:
        validator.validate(line)


USERS_STEP = "  - command: users\n    file: userimport*.csv\n    update_passwords: true\n"
SECRET = "Sesame-4-Journal!"


def test_users_files_journal_users_never_their_passwords(site: Site) -> None:
    """A user created with a password, then suspended with a new password, then deleted:
    each is told (the deleted user as Moodle's user_deleted event needs it), the
    password never (not even hashed); the preview tells the same (ids aside)."""
    header = "username;idnumber;firstname;lastname;password;suspended\n"
    site.write("userimport.csv", header + f"jo;J0001;Jo;Doe;{SECRET};0\n")
    preview = site.run("--check", steps=USERS_STEP)
    assert preview.code == 0, preview.out + preview.err
    assert site.run(steps=USERS_STEP).code == 0
    [created] = journal(site)
    assert (created["kind"], created["line"], created["id"]) == ("user_created", 2, None)
    assert created["user"]["username"] == "jo" and created["user"]["idnumber"] == "J0001"
    assert created["password_set"] is True
    site.write("userimport.csv", header + f"jo;J0001;Jo;Doe;{SECRET}-2;1\n")
    assert site.run(steps=USERS_STEP).code == 0
    [updated] = journal(site)
    [(uid,)] = site.query("SELECT id FROM mdl_user WHERE username = 'jo'")
    assert (updated["kind"], updated["id"]) == ("user_updated", uid)
    assert updated["before"] == {"suspended": 0} and updated["after"] == {"suspended": 1}
    assert updated["password_changed"] is True and updated["password_set"] is True
    [(hashed,)] = site.query("SELECT password FROM mdl_user WHERE id = :u", u=uid)
    assert hashed.startswith("$")  # the site's hash of the new password
    site.write("userimport.csv", "username;idnumber;firstname;lastname;deleted\njo;J0001;J;D;1\n")
    assert site.run(steps=USERS_STEP).code == 0
    [deleted] = journal(site)
    assert (deleted["kind"], deleted["id"]) == ("user_deleted", uid)
    site.write("userimport.csv", header + "al;A0001;Al;Doe;;0\n")  # no password given
    assert site.run(steps=USERS_STEP).code == 0
    [no_password] = journal(site)
    assert no_password["password_set"] is False
    assert deleted["user"]["username"] == "jo"  # as it was: the row's is rewritten
    runs = site.area / ".postsync" / "runs"
    for path in runs.rglob("*.journal"):
        text = path.read_text()
        assert SECRET not in text and hashed not in text
        assert '"password"' not in text
    validator = Draft202012Validator(journal_schema())
    for line in (created, updated, deleted, no_password):
        validator.validate(line)


def shown(result: Any) -> list[dict[str, Any]]:
    """The journal lines --diff printed."""
    return [json.loads(line) for line in result.out.splitlines() if line.startswith(" " * 8 + "{")]


def test_a_deletion_tells_what_it_takes_with_it_before_itself(site: Site) -> None:
    """A user enrolled with a role, a group and a cohort, then deleted by a users file:
    the journal tells the enrolment, the role, the membership and the cohort membership
    the deletion takes (`with`: user_deleted), then the deletion; a cohort deleted with
    its members tells each member first (`with`: cohort_deleted). The preview tells the
    same."""
    site.write("enrols.csv", HEADER + FIRST)
    run(site)
    [(uid, username)] = site.query("SELECT id, username FROM mdl_user WHERE idnumber = 'U0001'")
    [(u2,)] = site.query("SELECT id FROM mdl_user WHERE idnumber = 'U0002'")
    body = "cmd;cname;userid;cidnumber\nadd;Keepers;U0001;KEEP\nadd;Keepers;U0002;KEEP\n"
    site.write("cohorts.csv", body)
    assert site.run(steps=COHORTS_STEP).code == 0
    i = ids(site)
    [(cohort,)] = site.query("SELECT id FROM mdl_cohort WHERE idnumber = 'KEEP'")
    site.write("userimport.csv", f"username;firstname;lastname;deleted\n{username};A;B;1\n")
    preview = site.run("--check", "--diff", steps=USERS_STEP)
    assert preview.code == 0, preview.out + preview.err
    assert site.run(steps=USERS_STEP).code == 0
    lines = journal(site)
    assert shown(preview) == lines
    assert [(e["kind"], e.get("with"), e["line"]) for e in lines] == [
        ("user_enrolment_deleted", "user_deleted", 2),
        ("role_unassigned", "user_deleted", 2),
        ("group_member_removed", "user_deleted", 2),
        ("cohort_member_removed", "user_deleted", 2),
        ("user_deleted", None, 2),
    ]
    enrolment, role, member, membership, _ = lines
    assert (enrolment["enrolid"], enrolment["userid"], enrolment["courseid"]) == (
        i["enrol"],
        uid,
        i["course"],
    )
    assert isinstance(enrolment["id"], int) and enrolment["status"] == 0
    assert (role["contextid"], role["roleid"], role["courseid"]) == (
        i["context"],
        i["student"],
        i["course"],
    )
    assert (member["groupid"], member["courseid"]) == (i["group MATH101-G1"], i["course"])
    assert (membership["cohortid"], membership["userid"]) == (cohort, uid)
    site.write("cohorts.csv", "cmd;cidnumber\ndel;KEEP\n")
    preview = site.run("--check", "--diff", steps=COHORTS_STEP)
    assert preview.code == 0, preview.out + preview.err
    assert site.run(steps=COHORTS_STEP).code == 0
    deleted = journal(site)
    assert shown(preview) == deleted
    assert [(e["kind"], e.get("with"), e.get("userid")) for e in deleted] == [
        ("cohort_member_removed", "cohort_deleted", u2),  # U0001's went with the user
        ("cohort_deleted", None, None),
    ]
    validator = Draft202012Validator(journal_schema())
    for line in lines + deleted:
        validator.validate(line)
