"""A nightly workspace with every sync command (and an enrolments snapshot), whose
files hold lines that are not idempotent one by one: a user deleted and re-created
under the same idnumber (then enrolled), a user created and deleted, a cohort deleted
and re-created, a group renamed by `updateid` (a second application of that line
fails: the old idnumber is gone).

Applied twice, such a file does not end where one application ends: the crash harness
(test_crash_feeds.py) kills a run of it at every fault point, runs it again, and
compares the whole site with an uninterrupted run's, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from tests.reliability import workspace as ws

PLAYBOOK = """\
name: Crash harness, every feed
area: area
database: "{database}"
vars:
  stamp: "{{{{ now | strftime('%Y%m%d-%H%M') }}}}"
sync:
  - command: users
    file: users_*.csv
  - command: cohorts
    file: cohorts_*.csv
  - command: groups
    file: groups_*.csv
  - command: enrolments
    file: enrols_*.csv
  - command: group_members
    file: members_*.csv
  - command: enrolments
    file: roster_*.csv
    mode: snapshot
    missing: unenrol
    first_snapshot: apply
    diff: true
post_treatments:
  - clean_empty_groups: {{groupings: true}}
  - save_report: {{dest: "reports/{{{{ stamp }}}}_report_{{{{ file.name }}}}"}}
  - archive_control_files: {{dest: "archives/{{{{ stamp }}}}_{{{{ file.name }}}}"}}
  - write_retry_file: {{dest: "{{{{ file.stem }}}}_tryback_{{{{ stamp }}}}{{{{ file.suffix }}}}"}}
  - delete_control_files: {{}}
  - purge_old_files: {{paths: [archives], older_than_days: 90}}
  - purge_moodle_caches: {{moodle_dir: "{moodle}", php: [{php}]{run_as}}}
  - notify: {{webhook: {{url: "{webhook}", timeout_seconds: 5}}}}
"""

USERS = """\
username;idnumber;firstname;lastname;email;deleted;password
phoenix;U7001;Phoe;Nix;phoenix@example.org;0;
phoenix;U7001;Phoe;Nix;phoenix@example.org;1;
phoenix;U7001;Phoe;Nix;phoenix.again@example.org;0;
mayfly;U7002;May;Fly;mayfly@example.org;0;
mayfly;U7002;May;Fly;mayfly@example.org;1;
u0250;U0250;Gone;User;u0250@example.org;1;
newcomer;U7003;New;Comer;newcomer@example.org;0;
broken;U7004;Bro;Ken;not an address;0;Secret-7004
"""

COHORTS = """\
cmd;cidnumber;cname;userid
add;COH1;Cohort one;U0001
add;COH1;Cohort one;U0002
del;COH1;Cohort one;
add;COH1;Cohort one again;U0003
add;COH2;Cohort two;U7001
free;COH2;Cohort two;
add;COH2;Cohort two;U0004
"""

GROUPS = """\
type;courseid;name;idnumber;updateid
group;BIOL101;Renamed;BIOL101-GX;BIOL101-G1
group;BIOL101;Fresh;BIOL101-G3;
grouping;BIOL101;Both;BIOL101-GG;
"""

ENROLS = """\
cmd;cid;uid;rolename;gcmd;g1;g2
add;BIOL101;U7001;student;gadd;BIOL101-GX;
add;BIOL101;U7003;student;gadd;BIOL101-G3;
add;BIOL101;U0005;student;;;
del;BIOL101;U0005;student;;;
add;BIOL101;U0005;teacher;;;
add;BIOL102;U0250;student;;;
"""

MEMBERS = """\
courseid;groupid;userid;cmd
BIOL101;BIOL101-G2;U7001;add
BIOL101;BIOL101-G2;U7001;del
BIOL101;BIOL101-G3;U0005;add
"""


#: a snapshot of CHEM101's manual enrolments: the others there are unenrolled
ROSTER = """\
cmd;cid;uid;rolename
add;CHEM101;U0001;student
add;CHEM101;U7001;student
"""


def control_files() -> dict[str, bytes]:
    return {
        "roster_1.csv": ROSTER.encode(),
        "users_1.csv": USERS.encode(),
        "cohorts_1.csv": COHORTS.encode(),
        "groups_1.csv": GROUPS.encode(),
        "enrols_1.csv": ENROLS.encode(),
        "members_1.csv": MEMBERS.encode(),
    }


@dataclass(frozen=True)
class Outside:
    """What the playbook's treatments reach outside the workspace: a stand-in Moodle
    directory whose purge_caches.php a real interpreter runs (as `run_as` when the
    tests run as root, which the script never runs as), and a webhook's URL."""

    moodle: Path
    php: str
    run_as: str
    webhook: str


def playbook(database: str, outside: Outside, chunks: int = 0) -> str:
    """The playbook; with `chunks`, each command feed commits every `chunks` lines."""
    run_as = f", run_as: {outside.run_as}" if outside.run_as else ""
    text = PLAYBOOK.format(
        database=database,
        moodle=outside.moodle,
        php=outside.php,
        run_as=run_as,
        webhook=outside.webhook,
    )
    if chunks:
        for feed in ("users", "cohorts", "groups", "enrols", "members"):
            line = f"    file: {feed}_*.csv\n"
            text = text.replace(line, f"{line}    commit_every: {{lines: {chunks}}}\n")
    return text


def build_template(root: Path, database: str, outside: Outside, chunks: int = 0) -> Path:
    """The workspace before any run (its database already made at `database`)."""
    from tests.conftest import make_file

    template = root / "template"
    (template / "area").mkdir(parents=True)
    init = ws.postsync(template, "db", "init", database, "--demo")
    assert init.returncode == 0, init.stderr
    for name, content in control_files().items():
        (template / "area" / name).write_bytes(content)
    make_file(template / "area" / "archives" / "20260801-0100_users_1.csv", days=100)
    (template / "playbook.yml").write_text(playbook(database, outside, chunks))
    return template


def copy(template: Path, target: Path, database: str, outside: Outside, chunks: int = 0) -> Path:
    """A copy of the workspace whose playbook names `database` (a copy of the template's)."""
    shutil.copytree(template, target)
    (target / "playbook.yml").write_text(playbook(database, outside, chunks))
    return target


#: the site without ids or times: what the feeds decide
QUERIES = {
    "users": "SELECT idnumber, username, email, suspended, auth FROM mdl_user WHERE deleted = 0",
    "deleted users": "SELECT COUNT(*) FROM mdl_user WHERE deleted = 1",
    "enrolments": "SELECT c.idnumber, u.idnumber, e.enrol, ue.status FROM mdl_user_enrolments ue"
    " JOIN mdl_enrol e ON e.id = ue.enrolid JOIN mdl_course c ON c.id = e.courseid"
    " JOIN mdl_user u ON u.id = ue.userid",
    "roles": "SELECT x.contextlevel, x.instanceid, u.idnumber, r.shortname"
    " FROM mdl_role_assignments ra JOIN mdl_context x ON x.id = ra.contextid"
    " JOIN mdl_user u ON u.id = ra.userid JOIN mdl_role r ON r.id = ra.roleid",
    "groups": "SELECT c.idnumber, g.name, g.idnumber FROM mdl_groups g"
    " JOIN mdl_course c ON c.id = g.courseid",
    "groupings": "SELECT c.idnumber, g.name, g.idnumber FROM mdl_groupings g"
    " JOIN mdl_course c ON c.id = g.courseid",
    "members": "SELECT g.idnumber, u.idnumber FROM mdl_groups_members m"
    " JOIN mdl_groups g ON g.id = m.groupid JOIN mdl_user u ON u.id = m.userid",
    "cohorts": "SELECT idnumber, name FROM mdl_cohort",
    "cohort members": "SELECT c.idnumber, u.idnumber FROM mdl_cohort_members m"
    " JOIN mdl_cohort c ON c.id = m.cohortid JOIN mdl_user u ON u.id = m.userid",
}


def site(database: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            return {
                name: sorted(tuple(str(v) for v in row) for row in conn.execute(text(sql)))
                for name, sql in QUERIES.items()
            }
    finally:
        engine.dispose()
