"""`postsync demo`: a workspace that shows a nightly run end to end, in seconds."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from runner.core.errors import Exit, UsageError

MARKER = ".postsync-demo"

PLAYBOOK = """\
# yaml-language-server: $schema=playbook.schema.json
# The postsync demo: a nightly feed (users, cohorts, groups, enrolments, group members)
# on a seeded SQLite database.
#   postsync run nightly.yml --check     # preview
#   postsync run nightly.yml             # run (the feed's files are archived, then deleted)
name: Demo nightly feed
area: area
database: sqlite:///moodle.db
vars:
  stamp: "{{ now | strftime('%Y%m%d-%H%M') }}"
sync:
  # in this order: the enrolments find the users, the group members the groups
  - command: users
    file: userimport.csv
  - command: cohorts
    file: cohorts.csv
  - command: groups
    file: groups.csv
  - command: enrolments
    file: enrols*.csv
  - command: group_members
    file: groupmembers.csv
post_treatments:
  - clean_empty_groups:
      groupings: true
  - save_report: {}
  - archive_control_files:
      dest: "archives/{{ stamp }}_{{ file.name }}"
  - write_retry_file: {}
  - delete_control_files: {}
  - name: keep 90 days of history
    purge_old_files:
      paths: [archives, reports]
      older_than_days: 90
    tags: [housekeeping]
"""

COURSES = ("MATH101", "MATH102", "PHYS101", "CHEM201", "HIST101", "LANG202")


def _enrolments() -> str:
    lines = [
        "# Enrolments exported by the student information system",
        "cmd;cid;uid;rolename;enrol;starttime;gcmd;g1;g2",
    ]
    for i in range(1, 31):
        course = COURSES[i % len(COURSES)]
        group = "G1" if i % 2 else "G2"
        lines.append(f"add;{course};U{i:04d};student;manual;;gaddcreate;{group};")
    lines += [
        "add;MATH101;U0031;editingteacher;manual;2026-09-01 08:00:00;gadd;G1;G2",
        "add;PHYS101;U0032;teacher;manual;;;;",
        "shift;MATH102;U0101;teacher;manual;;;;",
        "del;MATH102;U0102;student;manual;;;;",
        "disable;PHYS102;U0103;student;manual;;;;",
        # lines that fail on purpose: they go to the report (and, later, the retry file)
        "add;MATH101;U9999;student;manual;;;;",
        "add;MATH101;U0300;student;manual;;;;",
        "add;ART999;U0010;student;manual;;;;",
        "add;CHEM201;U0011;wizard;manual;;;;",
        "add;LANG202;U0012;student;manual;31/12/2026;;;",
        # the students userimport.csv creates, into the groups groups.csv creates
        "add;MATH101;N0001;student;manual;;gadd;Lab A;",
        "add;MATH101;N0002;student;manual;;gadd;Lab A;",
        "add;MATH101;N0003;student;manual;;;;",
    ]
    return "\n".join(lines) + "\n"


def _group_members() -> str:
    return (
        "\n".join(
            [
                "courseid;groupid;userid;cmd",
                "MATH102;MATH102-G1;U0104;add",
                "MATH102;MATH102-G2;U0105;add",
                "PHYS102;PHYS102-G1;U0105;shift",
                "PHYS102;PHYS102-G2;U0106;del",
                "MATH101;MATH101-G1;U0200;add",
                "MATH101;MATH101-G7;U0006;add",
            ]
        )
        + "\n"
    )


def _users() -> str:
    return (
        "# New students from the student information system\n"
        "username;idnumber;firstname;lastname;email;country;lang\n"
        "nina.roux;N0001;Nina;Roux;nina.roux@example.org;FR;fr\n"
        "omar.haddad;N0002;Omar;Haddad;omar.haddad@example.org;FR;fr\n"
        "paula.weber;N0003;Paula;Weber;paula.weber@example.org;DE;de\n"
        "quentin.blanc;N0004;Quentin;Blanc;quentin.blanc;FR;fr\n"  # not an address: fails
    )


def _cohorts() -> str:
    return (
        "cmd;cname;cidnumber;userid\n"
        "add;First year 2026;Y2026;N0001\n"
        "add;First year 2026;Y2026;N0002\n"
        "add;First year 2026;Y2026;N0004\n"  # not created (its line failed): fails
    )


def _groups() -> str:
    return (
        "type;courseid;name;idnumber;description;grouping\n"
        "grouping;MATH101;Labs;MATH101-LABS;Lab sessions;\n"
        "group;MATH101;Lab A;MATH101-LA;Monday lab;MATH101-LABS\n"
        "group;MATH101;Lab B;MATH101-LB;Thursday lab (no one yet: kept);MATH101-LABS\n"
    )


#: the demo's control files, by name
FILES = {
    "userimport.csv": _users,
    "cohorts.csv": _cohorts,
    "groups.csv": _groups,
    "enrols.csv": _enrolments,
    "groupmembers.csv": _group_members,
}


def write_files(area: Path) -> None:
    """The demo's control files, in `area`, as an upload finished an hour ago leaves
    them: settled (a sync step reads a file only once settle_seconds have passed since
    its last change)."""
    settled = time.time() - 3600
    for name, content in FILES.items():
        path = area / name
        path.write_text(content(), encoding="utf-8")
        os.utime(path, (settled, settled))


def _invocation() -> str:
    """How this postsync was started, usable from another directory."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("postsync")
    if argv0.name in ("__main__.py", "-m", "-c") or argv0.suffix == ".py":
        return f"{sys.executable} -m runner"
    if argv0.name != "postsync":
        return "postsync"
    if argv0.parent == Path() and shutil.which(argv0.name):
        return argv0.name
    return str(argv0.absolute()) if argv0.exists() else "postsync"


def build_demo(directory: Path) -> int:
    from runner.cli.output import TextReporter
    from runner.db.connect import connect, parse_url
    from runner.db.init import create_tables, seed_demo
    from runner.db.tables import moodle_tables
    from runner.engine.execute import run_playbook
    from runner.engine.results import RunOptions
    from runner.playbook.model import load_playbook
    from runner.playbook.schema import playbook_schema

    directory = directory.absolute()
    if directory.exists() and any(directory.iterdir()):
        if not (directory / MARKER).is_file():
            raise UsageError(
                f"{directory} exists and is not a postsync demo: choose another"
                " directory, or remove it"
            )
        shutil.rmtree(directory)
    area = directory / "area"
    (area / "archives").mkdir(parents=True)
    (directory / MARKER).write_text("built by `postsync demo`; rebuilt by the next one\n")
    started = time.monotonic()

    url = parse_url("sqlite:///moodle.db", directory)
    engine = connect(url)
    tables = moodle_tables()
    now = int(time.time())
    create_tables(engine, tables, now)
    site = seed_demo(engine, tables, now)
    engine.dispose()

    write_files(area)
    old = datetime.now() - timedelta(days=120)
    stale = area / "archives" / f"{old:%Y%m%d-%H%M}_enrols.csv"
    stale.write_text("cmd;cid;uid;rolename\n")
    os.utime(stale, (old.timestamp(), old.timestamp()))
    playbook_path = directory / "nightly.yml"
    playbook_path.write_text(PLAYBOOK)
    (directory / "playbook.schema.json").write_text(json.dumps(playbook_schema(), indent=2))

    print(
        f"postsync demo in {directory}: {site.users} users, {site.courses} courses,"
        f" {site.groups} groups, {site.enrolments} enrolments in moodle.db\n"
    )
    result = run_playbook(load_playbook(playbook_path), RunOptions(), TextReporter())
    elapsed = time.monotonic() - started
    code = int(result.exit_code)
    me = _invocation()
    retry = sorted(area.glob("*_tryback_*"))
    retries = "".join(f"  {path}\n" for path in retry) + (
        "                     the failed lines of each control file, to fix and re-run"
        if retry
        else f"  {area}    no failed lines, no retry file"
    )
    record = result.record
    retried = f"area/.postsync/runs/{record.name}" if record is not None else "RECORD"
    journal = f"{record.with_suffix('')}/*.journal" if record is not None else "(no journal)"
    print(f"""
Built and ran in {elapsed:.1f}s (exit code {code}: a few lines fail on purpose). Where to look:
  {playbook_path}    the playbook
  {area}/reports/    one report per control file, a line per data line
  {area}/archives/   the control files, archived before they were deleted
{retries}
  {record or "(no record)"}
                     the run record (failed lines, processed courses)
  {journal}
                     the run's change journal: every row it changed, a part per file
Try next:
  cd {directory}
  {me} run nightly.yml                      # again: nothing left to do
  {me} retry {retried} --check
                     # the failed lines again: what a retry does once the site is fixed
  {me} undo {retried} --check
                     # the control files that would reverse this run, from its journal
  cp area/archives/*_enrols.csv area/enrols.csv
  touch -d '2 minutes ago' area/enrols.csv  # a file is read once settled (settle_seconds)
  {me} run nightly.yml --check --diff       # preview a feed: nothing is changed""")
    sys.stdout.flush()
    if result.exit_code in (Exit.OK, Exit.LINES_FAILED):
        return int(Exit.OK)
    return int(result.exit_code)
