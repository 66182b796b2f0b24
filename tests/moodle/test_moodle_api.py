"""What Moodle sees after postsync: each check on a fresh clone of the seeded site
(tests/moodle/php/seed.php), postsync run through its CLI, then Moodle's own API asked in
a new PHP process."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from passlib.hash import bcrypt
from sqlalchemy import create_engine, text

from runner.sync.users.passwords import Passwords
from tests.conftest import postsync_process
from tests.moodle.lab import PHP_OPTIONS, Site

ROOT = Path(__file__).resolve().parents[2]
HEADER = "cmd;cid;uid;rolename;enrol;gcmd;g1\n"


def sync(
    site: Site, tmp_path: Path, enrolments: str, members: str | None = None, header: str = HEADER
) -> str:
    area = tmp_path / "area"
    area.mkdir(parents=True, exist_ok=True)
    (area / "enrols.csv").write_text(header + enrolments)
    steps = "  - command: enrolments\n    file: enrols.csv\n"
    if members is not None:
        (area / "members.csv").write_text("cmd;courseid;groupid;userid\n" + members)
        steps += "  - command: group_members\n    file: members.csv\n"
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(f'name: Lab\narea: area\ndatabase: "{site.url}"\nsync:\n{steps}')
    done = postsync_process("run", playbook)
    assert done.returncode in (0, 2), done.stdout + done.stderr
    return done.stdout


def test_enrolments_roles_and_groups_are_what_moodle_reports(site: Site, tmp_path: Path) -> None:
    """Enrolments, roles and group memberships postsync made are what enrol_get_course_users,
    is_enrolled, get_user_roles and groups_get_members report."""
    sync(
        site,
        tmp_path,
        "add;C101;S001;student;manual;gaddcreate;Team A\n"
        "add;C101;S002;editingteacher;manual;;\n"
        "add;C102;S001;student;manual;gadd;Spare\n",
    )
    state = site.php("state.php")
    active = {"enrolled": True, "active": True}
    assert state["MATH101"]["users"] == {
        "S001": {**active, "roles": ["student"]},
        "S002": {**active, "roles": ["editingteacher"]},
        "S009": {**active, "roles": ["student"]},
    }
    assert state["MATH101"]["groups"] == {"G1": ["S009"], "Team A": ["S001"]}
    assert state["PHYS102"]["users"]["S001"] == {**active, "roles": ["student"]}
    assert state["PHYS102"]["groups"]["Spare"] == ["S001"]


def test_moodle_removes_what_postsync_made_cleanly(site: Site, tmp_path: Path) -> None:
    """Moodle's own groups_remove_member, role_unassign and unenrol_user work on rows
    postsync created: no exception, no row left."""
    sync(site, tmp_path, "add;C101;S001;student;manual;gaddcreate;Team A\n")
    removed = site.php("moodle_remove.php", "MATH101", "S001")
    assert removed == {
        "errors": [],
        "left": {"user_enrolments": 0, "role_assignments": 0, "groups_members": 0},
    }
    assert "S001" not in site.php("state.php")["MATH101"]["users"]


def test_unenrolling_leaves_what_moodle_would_leave(
    site: Site, lab_twin: Site, tmp_path: Path
) -> None:
    """postsync's `del` of a user's last enrolment in a course leaves the same rows as
    Moodle's own unenrol on a twin site (user S009 in C101, enrolled and put in a group
    by Moodle)."""
    sync(site, tmp_path, "del;C101;S009;student;manual;;\n")
    lab_twin.php("moodle_remove.php", "MATH101", "S009")
    ours, moodles = (
        site.php("rows.php", "MATH101", "S009"),
        lab_twin.php("rows.php", "MATH101", "S009"),
    )
    assert ours == moodles


def test_the_nightly_example_on_the_real_site(site: Site, tmp_path: Path) -> None:
    """postsync's nightly example (all six treatments) on the real site: the preview is the
    run, and a second run changes nothing. The archives' names carry the run's minute
    (`stamp`): it is given (`-e stamp=`) so that a preview and a run on either side of
    a minute's turn name the same archives."""
    area = tmp_path / "area"
    area.mkdir()
    (area / "enrols.csv").write_text(
        HEADER
        + "add;C101;S001;student;manual;gaddcreate;Team A\n"
        + "add;C101;S002;student;manual;;\n"
        + "add;C103;S003;student;manual;;\n"
        + "add;C101;S404;student;manual;;\n"  # no such user: a failed line, retried
    )
    (area / "groupmembers.csv").write_text("cmd;courseid;groupid;userid\nadd;C101;C101-G1;S002\n")
    env = {"POSTSYNC_AREA": str(area), "POSTSYNC_DB": site.url}
    nightly = ROOT / "playbooks" / "nightly.yml"
    stamp = ("-e", f"stamp={time.strftime('%Y%m%d-%H%M')}")
    preview = postsync_process("run", nightly, "--check", *stamp, env=env)
    real = postsync_process("run", nightly, *stamp, env=env)
    items = [line for line in preview.stdout.splitlines() if line.startswith("    ")]
    assert preview.returncode == real.returncode == 2, real.stdout + real.stderr
    assert items == [line for line in real.stdout.splitlines() if line.startswith("    ")]
    # "Old", empty in a processed course, was made in Moodle (the seed), not by a feed
    assert not [line for line in items if 'delete group "' in line], items
    assert '"Old" in course CHEM103 (no feed made it)' in real.stdout
    assert any(f"archives/{stamp[1][6:]}_enrols.csv" in item for item in items), items
    again = postsync_process("run", nightly, *stamp, env=env)
    assert again.returncode == 0, again.stdout
    assert "changed=0" in again.stdout
    state = site.php("state.php")
    assert state["CHEM103"]["groups"]["Old"] == []
    assert state["MATH101"]["groups"] == {"G1": ["S002", "S009"], "Team A": ["S001"]}


#: the events Moodle's API logs for "enrol a student, put them in a group" (what
#: moodle_enrol.php found on Moodle 4.2); the README lists them as what postsync does not do
MOODLE_ENROL_EVENTS = [
    "\\core\\event\\group_member_added",
    "\\core\\event\\role_assigned",
    "\\core\\event\\user_enrolment_created",
]


def test_the_events_moodle_logs_and_postsync_does_not(
    site: Site, lab_twin: Site, tmp_path: Path
) -> None:
    """For the same enrolment with a group, Moodle's API logs user_enrolment_created,
    role_assigned and group_member_added in logstore_standard_log (and runs their
    observers); postsync, writing the tables directly, logs none."""
    sync(site, tmp_path, "add;C101;S001;student;manual;gadd;G1\n")
    assert site.php("log_events.php", "MATH101", "S001") == {"events": []}
    assert lab_twin.php("moodle_enrol.php", "MATH101", "S001", "student", "G1") == {
        "enrolled": True
    }
    assert lab_twin.php("log_events.php", "MATH101", "S001") == {"events": MOODLE_ENROL_EVENTS}


def test_moodles_group_cache_is_stale_until_postsync_purges_it(site: Site, tmp_path: Path) -> None:
    """Moodle caches a course's groups (the groupdata application cache, shared by its
    processes): after postsync creates a group, groups_get_all_groups(course) still
    lists the course's old groups (stale) while a user's own groups are current (they
    are read from the memberships); postsync's purge_moodle_caches step (Moodle's own
    admin/cli/purge_caches.php --muc, run by postsync after the sync; moodle_dir given
    as the site's dirroot, public/ from Moodle 5.1, whose script is in the directory
    above) makes every answer current, its preview running nothing."""
    warm = site.php("user_groups.php", "MATH101", "S001")  # fills the cache
    assert warm == {"api": [], "course_groups": ["G1"], "database": []}
    sync(site, tmp_path, "add;C101;S001;student;manual;gaddcreate;Team A\n")
    stale = site.php("user_groups.php", "MATH101", "S001")
    assert stale["database"] == ["Team A"]
    assert stale["api"] == ["Team A"]  # current: read from the memberships
    assert stale["course_groups"] == ["G1"]  # stale: the cached group list
    # the next run ends with the remedy
    (tmp_path / "area" / "enrols.csv").write_text(
        HEADER + "add;C101;S002;student;manual;gaddcreate;Team B\n"
    )
    php = ["php", *PHP_OPTIONS]
    me = site.lab.user.pw_name
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(
        playbook.read_text()
        + "post_treatments:\n  - purge_moodle_caches:\n"
        + f"      moodle_dir: {site.lab.webroot}\n      php: {json.dumps(php)}\n"
        + f"      run_as: {me}\n      environment: {{LAB_DB: {site.name}}}\n"
    )
    preview = postsync_process("run", playbook, "--check")
    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert f"{site.lab.moodle}/admin/cli/purge_caches.php --muc" in preview.stdout
    assert site.php("user_groups.php", "MATH101", "S001")["course_groups"] == ["G1"]
    done = postsync_process("run", playbook)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "purged in" in done.stdout
    assert site.php("user_groups.php", "MATH101", "S001") == {
        "api": ["Team A"],
        "course_groups": ["G1", "Team A", "Team B"],
        "database": ["Team A"],
    }


def test_unenrolling_removes_the_roles_below_the_course(
    site: Site, lab_twin: Site, tmp_path: Path
) -> None:
    """A user given a role in an activity of the course as well (a context below the course):
    postsync's `del` of their last enrolment leaves the same rows as Moodle's own unenrol
    on a twin site."""
    for each in (site, lab_twin):
        assert each.php("child_role.php", "MATH101", "S009", "editingteacher") == {
            "contextlevel": 70
        }
    sync(site, tmp_path, "del;C101;S009;student;manual;;\n")
    lab_twin.php("moodle_remove.php", "MATH101", "S009")
    assert site.php("rows.php", "MATH101", "S009") == lab_twin.php("rows.php", "MATH101", "S009")


#: tool_sync's own sample (tests/webservices/enrol_sample.csv), on the lab's courses
#: (C101..C103) and users (S001..S005): group commands, groups to create or not
TOOLSYNC_HEADER = "cmd;cid;uid;rolename;enrol;gcmd;g1;g2;g3\n"
TOOLSYNC_SAMPLE = (
    "add;C101;S001;editingteacher;manual;gaddcreate;GROUP1A;GROUP1B;\n"
    "add;C103;S002;editingteacher;manual;gadd;GROUP3FAILEDCREATE;;\n"
    "add;C101;S004;student;manual;gadd;GROUP1A;GROUP2A;GROUP1BFAILED\n"
    "add;C101;S005;student;manual;gaddcreate;GROUP1A;\n"
    "add;C102;S003;student;manual;gadd;GROUP2A;GROUP2BFAILED;\n"
    "add;C102;S004;student;manual;gdel;GROUP2A;GROUP2BFAILED;\n"
    "add;C103;S005;student;manual;gadd;GROUP3FAILED;;\n"
    "add;C103;S003;student;manual;gaddcreate;GROUP3A;;\n"
)
#: the sample's lines that replace a user's groups
TOOLSYNC_REPLACE = "add;C102;S001;editingteacher;manual;greplacecreate;GROUP2A;GROUP2B;\n"


def members_file(
    site: Site, root: Path, members: str, options: str = ""
) -> subprocess.CompletedProcess[str]:
    """A group_members file (with the step's `options`) through postsync's CLI."""
    (root / "area").mkdir(parents=True)
    (root / "area" / "members.csv").write_text(members)
    playbook = root / "playbook.yml"
    playbook.write_text(
        f'name: Lab\narea: area\ndatabase: "{site.url}"\nsync:\n'
        f"  - command: group_members\n    file: members.csv\n{options}"
    )
    return postsync_process("run", playbook)


def _toolsync(site: Site, tmp_path: Path, body: str, kind: str = "enrols") -> None:
    if not site.lab.has_toolsync():
        pytest.skip("tool_sync not installed: set POSTSYNC_TOOLSYNC_GIT (tests/moodle/README.md)")
    control = tmp_path / "toolsync.csv"
    control.write_text(body if kind != "enrols" else TOOLSYNC_HEADER + body)
    assert site.php("toolsync.php", kind, str(site.lab.hand_over(control))) == {"ran": True}


def test_the_same_enrolment_file_through_tool_sync(
    site: Site, lab_twin: Site, tmp_path: Path
) -> None:
    """tool_sync's enrolment sample (its add lines with gadd, gaddcreate and gdel)
    processed by postsync on one site and by tool_sync's own enrolment sync on a twin:
    user_enrolments, role_assignments, groups and groups_members are the same (ids and
    times aside): a line whose group does not exist enrols the user in both (postsync
    reports it failed, for the retry file)."""
    _toolsync(lab_twin, tmp_path, TOOLSYNC_SAMPLE)
    out = sync(site, tmp_path, TOOLSYNC_SAMPLE, header=TOOLSYNC_HEADER)
    assert "5 failed, 5 of them in part applied" in out, out
    ours, theirs = site.php("tables.php"), lab_twin.php("tables.php")
    for table in ours:
        assert (table, sorted(set(ours[table]) - set(theirs[table]))) == (table, [])
        assert (table, sorted(set(theirs[table]) - set(ours[table]))) == (table, [])


def test_tool_sync_stops_on_a_group_replacement_where_postsync_applies_it(
    site: Site, lab_twin: Site, tmp_path: Path
) -> None:
    """tool_sync's greplace (replace a user's groups) calls Moodle's removed Events 1 API
    (events_trigger_legacy) and stops its whole run with a coding error on Moodle 4.2;
    postsync applies the line (the user's other groups left, the named ones joined)."""
    with pytest.raises(RuntimeError, match="events_trigger_legacy"):
        _toolsync(lab_twin, tmp_path, TOOLSYNC_REPLACE)
    out = sync(site, tmp_path, TOOLSYNC_REPLACE, header=TOOLSYNC_HEADER)
    assert "1 changed" in out
    assert site.php("state.php")["PHYS102"]["groups"]["GROUP2A"] == ["S001"]


def test_clean_empty_groups_leaves_what_moodles_group_deletion_leaves(
    site: Site, lab_twin: Site, tmp_path: Path
) -> None:
    """clean_empty_groups deleting the empty group "Old" of a processed course (made in
    Moodle: `groups: all_empty` takes it) leaves the same groups, grouping links,
    memberships and enrolments as Moodle's own groups_delete_group on a twin site."""
    area = tmp_path / "area"
    area.mkdir()
    (area / "enrols.csv").write_text(HEADER + "add;C103;S003;student;manual;;\n")
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(
        f'name: Lab\narea: area\ndatabase: "{site.url}"\nsync:\n'
        "  - command: enrolments\n    file: enrols.csv\n"
        "post_treatments:\n  - clean_empty_groups: {groups: all_empty}\n"
    )
    done = postsync_process("run", playbook)
    assert '    delete group "Old" in course CHEM103  (idnumber C103-OLD)' in done.stdout
    (tmp_path / "twin").mkdir()
    sync(lab_twin, tmp_path / "twin", "add;C103;S003;student;manual;;\n")
    assert lab_twin.php("moodle_delete_group.php", "CHEM103", "Old") == {"deleted": True}
    assert site.php("tables.php") == lab_twin.php("tables.php")


def test_shift_and_greplace_leave_what_moodles_api_leaves(
    site: Site, lab_twin: Site, tmp_path: Path
) -> None:
    """postsync's `shift` (a user's roles in a course replaced by one) and `greplace` (their
    groups replaced by one) leave the same rows as the same changes made with Moodle's
    role_unassign/role_assign and groups_remove_member/groups_add_member on a twin site
    (user S009, a student of C101 in group G1, made by Moodle)."""
    for each in (site, lab_twin):  # a second group in the course for greplace to put S009 in
        sync(each, tmp_path / each.name, "add;C101;S001;student;manual;gaddcreate;Team B\n")
    sync(site, tmp_path / "shift", "shift;C101;S009;editingteacher;manual;greplace;Team B\n")
    lab_twin.php("moodle_change.php", "shift", "MATH101", "S009", "editingteacher")
    lab_twin.php("moodle_change.php", "greplace", "MATH101", "S009", "Team B")
    assert site.php("tables.php") == lab_twin.php("tables.php")


def test_the_same_group_members_file_through_tool_sync(
    site: Site, lab_twin: Site, tmp_path: Path
) -> None:
    """A group-members file (tool_sync's group_members.csv shape: courseid;groupid;userid,
    groups by idnumber) processed by postsync and by tool_sync's own group-members sync
    on a twin: the same memberships (users enrolled first, the same way on both). One
    deliberate difference: tool_sync marks the memberships it makes as its own
    (groups_members.component 'tool_sync', locked in Moodle's UI); postsync's are the
    course's own (component '', as groups_add_member makes them by default)."""
    members = (
        "courseid;groupid;userid\n"
        "C101;C101-G1;S001\n"
        "C101;C101-G1;S002\n"
        "C102;C102-SPARE;S010\n"
        "C102;C102-NONE;S010\n"  # no such group: fails on both
    )
    for each in (site, lab_twin):
        sync(
            each,
            tmp_path / each.name,
            "add;C101;S001;student;manual;;\nadd;C101;S002;student;manual;;\n",
        )
    _toolsync(lab_twin, tmp_path, members, kind="groupmembers")
    done = members_file(site, tmp_path / "gm", members)
    assert done.returncode == 2, done.stdout
    ours, theirs = site.php("tables.php"), lab_twin.php("tables.php")
    fed = {"MATH101|G1|S001", "MATH101|G1|S002", "PHYS102|Spare|S010"}
    for rows, component in ((ours, ""), (theirs, "tool_sync")):
        members = rows.pop("groups_members")
        assert sorted(m for m in members if m.rsplit("|", 2)[0] in fed) == sorted(
            f"{m}|{component}|0" for m in fed
        )
        assert "MATH101|G1|S009||0" in members  # Moodle's own, untouched
    assert ours == theirs


def test_protected_memberships_are_tool_syncs_own(
    site: Site, lab_twin: Site, tmp_path: Path
) -> None:
    """With `membership_component: tool_sync`, the group-members file above gives
    exactly tool_sync's rows, the memberships' component included."""
    members = "courseid;groupid;userid\nC101;C101-G1;S001\nC102;C102-SPARE;S010\n"
    for each in (site, lab_twin):
        sync(each, tmp_path / each.name, "add;C101;S001;student;manual;;\n")
    _toolsync(lab_twin, tmp_path, members, kind="groupmembers")
    done = members_file(site, tmp_path / "gm", members, "    membership_component: tool_sync\n")
    assert done.returncode in (0, 2), done.stdout
    assert site.php("tables.php") == lab_twin.php("tables.php")


def test_a_cohort_syncs_rows_stay_through_postsyncs_lines(site: Site, tmp_path: Path) -> None:
    """Moodle's cohort sync (enrol_cohort) enrols S005 in C101 with its own student role
    and puts them in the group it created; a second cohort sync's group is empty.
    postsync's `shift` and `greplacecreate` for S005 keep the cohort's role and
    membership, its clean_empty_groups keeps the empty group the second instance fills;
    Moodle's own cohort sync run afterwards finds nothing to change."""
    assert site.php("cohort_sync.php", "setup", "MATH101", "S005") == {"done": "setup"}
    area = tmp_path / "area"
    area.mkdir()
    (area / "enrols.csv").write_text(
        HEADER + "shift;C101;S005;editingteacher;manual;greplacecreate;Team Z\n"
    )
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(
        f'name: Lab\narea: area\ndatabase: "{site.url}"\nsync:\n'
        "  - command: enrolments\n    file: enrols.csv\n"
        "post_treatments:\n  - clean_empty_groups: {}\n"
    )
    done = postsync_process("run", playbook)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'kept 1 empty group: "Lab empty cohort" in course MATH101' in done.stdout
    state = site.php("state.php")["MATH101"]
    assert state["users"]["S005"]["roles"] == ["editingteacher", "student"]
    rows = site.php("tables.php")
    members = [m.rsplit("|", 1)[0] for m in rows["groups_members"] if "|S005|" in m]
    assert members == ["MATH101|Lab cohort cohort|S005|enrol_cohort", "MATH101|Team Z|S005|"]
    assert any(g.startswith("MATH101|Lab empty cohort|") for g in rows["groups"])
    site.php("cohort_sync.php", "sync", "MATH101")
    assert site.php("tables.php") == rows


def test_access_checks_see_postsyncs_role_changes_in_a_new_process(
    site: Site, lab_twin: Site, tmp_path: Path
) -> None:
    """Moodle's access data (roles, capabilities) asked before and after postsync's
    `shift` of S009 from student to editingteacher in C101: a new PHP process (a cron
    run, a new request without a session) answers with the new role at once; and the
    user is marked dirty as Moodle's own role_unassign/role_assign mark them on a twin
    (the accesslib/dirtyusers cache flag, lasting the site's session timeout, read with
    get_cache_flags), so a web session already open reloads its access data at its next
    request."""
    since = str(int(time.time()) - 1)
    before = site.php("access.php", "MATH101", "S009")
    assert before == {"roles": ["student"], "manage_activities": False, "enrolled": True}
    sync(site, tmp_path, "shift;C101;S009;editingteacher;manual;;\n")
    after = site.php("access.php", "MATH101", "S009")
    assert after == {"roles": ["editingteacher"], "manage_activities": True, "enrolled": True}
    lab_twin.php("moodle_change.php", "shift", "MATH101", "S009", "editingteacher")
    ours, moodles = site.php("dirty_users.php", since), lab_twin.php("dirty_users.php", since)
    assert ours == moodles
    assert ours["dirty"] == {"S009": 1}


def feed(site: Site, tmp_path: Path, command: str, body: str, options: str = "") -> str:
    """Run one control file of `command` on the site through postsync's CLI."""
    area = tmp_path / "area"
    area.mkdir(parents=True, exist_ok=True)
    (area / f"{command}.csv").write_text(body)
    playbook = tmp_path / f"{command}.yml"
    playbook.write_text(
        f'name: Lab\narea: area\ndatabase: "{site.url}"\nsync:\n'
        f"  - command: {command}\n    file: {command}.csv\n{options}"
    )
    done = postsync_process("run", playbook)
    assert done.returncode in (0, 2), done.stdout + done.stderr
    return done.stdout


LAB_USERS = [
    {
        "username": "lab1",
        "idnumber": "L001",
        "firstname": "Lab",
        "lastname": "One",
        "email": "lab1@example.com",
        "country": "FR",
        "city": "Lyon",
        "password": "Lab-pass-123!",
    },
    {
        "username": "lab2",
        "idnumber": "L002",
        "firstname": "Lab",
        "lastname": "Two",
        "email": "lab2@example.com",
        "country": "DE",
        "city": "Köln",
        "password": "Other-pass-456!",
    },
]


def test_users_postsync_creates_are_moodles_own(site: Site, lab_twin: Site, tmp_path: Path) -> None:
    """Users a postsync users file creates (with passwords) are, to Moodle's API, the
    users Moodle's own user_create_user makes from the same fields on a twin site: the
    same fields, a user context, a password authenticate_user_login accepts; a
    suspension in a later file makes that login fail as Moodle's does."""
    columns = list(LAB_USERS[0])
    body = ";".join(columns) + "\n"
    body += "".join(";".join(u[c] for c in columns) + "\n" for u in LAB_USERS)
    assert "2 changed" in feed(site, tmp_path, "users", body)
    lab_twin.php("people.php", "create", json.dumps(LAB_USERS))
    args = [a for u in LAB_USERS for a in (u["username"], u["password"])]
    ours, theirs = site.php("people.php", "show", *args), lab_twin.php("people.php", "show", *args)
    assert ours == theirs
    assert all(u["logs_in"] and u["context"] == {"depth": 2, "path": True} for u in ours.values())
    assert all(u["complete"] and u["valid"] for u in ours.values())
    suspend = "username;firstname;lastname;suspended\nlab1;Lab;One;1\n"
    assert "1 changed" in feed(site, tmp_path / "again", "users", suspend)
    after = site.php("people.php", "show", *args)
    assert after["lab1"]["logs_in"] is False and after["lab1"]["fields"]["suspended"] == "1"
    assert after["lab2"]["logs_in"] is True


def test_passwords_moodle_hashed_stay_unchanged_and_postsyncs_log_in(
    site: Site, tmp_path: Path
) -> None:
    """With update_passwords: true, a users file giving the seeded users the password
    Moodle's own user_create_user hashed leaves it unchanged, and so does a bcrypt hash
    of it (Moodle 4.2's) before and after the user's login, at which Moodle 4.3 and
    later rehash it with SHA-512 crypt; a new password postsync sets is in the site's
    scheme, logs in, and Moodle's login keeps postsync's hash as it is."""
    engine = create_engine(site.url)

    def hashes() -> dict[str, str]:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT username, password FROM mdl_user WHERE username IN ('u01','u02','u03')"
                )
            )
            return {str(name): str(hashed) for name, hashed in rows}

    try:
        with engine.begin() as conn:
            version = conn.execute(
                text("SELECT value FROM mdl_config WHERE name = 'version'")
            ).scalar_one()
            legacy = bcrypt.using(ident="2y", rounds=10).hash("Pass-word-1234")
            conn.execute(
                text("UPDATE mdl_user SET password = :p WHERE username = 'u02'"), {"p": legacy}
            )
        scheme = "$6$rounds=10000$" if Passwords.of(str(version)).sha512 else "$2y$10$"
        body = "username;firstname;lastname;idnumber;password\n"
        body += "u01;User;u01;S001;Pass-word-1234\nu02;User;u02;S002;Pass-word-1234\n"
        body += "u03;User;u03;S003;New-pass-5678\n"
        step = "    update_passwords: true\n"
        out = feed(site, tmp_path, "users", body, step)
        assert "(3 lines: 1 changed, 2 unchanged, 0 failed)" in out, out
        before = hashes()
        assert before["u02"] == legacy and before["u03"].startswith(scheme)
        args = ["u01", "Pass-word-1234", "u02", "Pass-word-1234", "u03", "New-pass-5678"]
        assert all(u["logs_in"] for u in site.php("people.php", "show", *args).values())
        after = hashes()
        assert after["u02"].startswith(scheme)  # rehashed at the login from 4.3 on
        assert after["u03"] == before["u03"]  # postsync's hash is Moodle's current form
        out = feed(site, tmp_path / "again", "users", body, step)
        assert "(3 lines: 0 changed, 3 unchanged, 0 failed)" in out, out
        assert hashes() == after
    finally:
        engine.dispose()


def test_a_deletion_leaves_what_moodles_delete_user_leaves(
    site: Site, lab_twin: Site, tmp_path: Path
) -> None:
    """A users file's deletion of S009 (a student of C101, in its group G1) leaves the
    same enrolments, roles and memberships as Moodle's own delete_user on a twin, and
    Moodle no longer finds the user."""
    out = feed(
        site, tmp_path, "users", "username;firstname;lastname;idnumber;deleted\nu09;U;u09;S009;1\n"
    )
    assert "1 changed" in out, out
    assert lab_twin.php("people.php", "delete", "S009") == {"deleted": True}
    assert site.php("tables.php") == lab_twin.php("tables.php")
    assert site.php("people.php", "show", "u09", "x") == {"u09": None}


def test_cohorts_and_groups_files_are_what_moodle_reports(site: Site, tmp_path: Path) -> None:
    """A cohorts file's cohort and members, a groups file's grouping and groups, are
    what Moodle's cohort_is_member, cohort_get_cohorts, groups_get_all_groupings,
    groups_get_all_groups and groups_get_group_by_idnumber report."""
    cohorts = "cmd;cname;cidnumber;userid\nadd;Lab year;LY1;S001\nadd;Lab year;LY1;S002\n"
    assert "2 changed" in feed(site, tmp_path, "cohorts", cohorts)
    groups = (
        "type;courseid;name;idnumber;description;grouping\n"
        "grouping;C101;Labs;C101-LABS;All labs;\n"
        "group;C101;Lab A;C101-LA;Monday;C101-LABS\n"
        "group;C101;Lab B;C101-LB;Thursday;C101-LABS\n"
    )
    assert "3 changed" in feed(site, tmp_path, "groups", groups)
    seen = site.php("people.php", "cohorts")
    assert seen["LY1"] == {
        "name": "Lab year",
        "members": ["S001", "S002"],
        "context": 10,
        "listed": True,
    }
    course = site.php("people.php", "groups", "MATH101")
    assert course["groupings"]["C101-LABS"] == {"name": "Labs", "groups": ["Lab A", "Lab B"]}
    assert course["groups"]["Lab A"] == {
        "idnumber": "C101-LA",
        "by_idnumber": True,
        "description": "Monday",
    }
