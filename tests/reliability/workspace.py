"""A nightly workspace for the reliability tests: a demo database, eight control files
on distinct courses (so each file's database changes can be told apart), and a playbook
using every treatment with deterministic names."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from tests.conftest import POSTSYNC

STAMP = "20261124-0100"
PLAYBOOK = """\
name: Crash harness
area: area
database: sqlite:///moodle.db
vars:
  stamp: "{{ now | strftime('%Y%m%d-%H%M') }}"
sync:
  - command: enrolments
    file: enrols_*.csv
  - command: enrolments
    file: latin1_*.csv
    encoding: iso-8859-1
  - command: group_members
    file: members_*.csv
post_treatments:
  - clean_empty_groups: {groupings: true}
  - save_report: {dest: "reports/{{ stamp }}_report_{{ file.name }}"}
  - archive_control_files: {dest: "archives/{{ stamp }}_{{ file.name }}"}
  - write_retry_file: {dest: "{{ file.stem }}_tryback_{{ stamp }}{{ file.suffix }}"}
  - delete_control_files: {}
  - purge_old_files: {paths: [archives], older_than_days: 90}
"""

ENROL_HEADER = "cmd;cid;uid;rolename;gcmd;g1;g2\n"


def _enrolments(course: str, first: int, eol: str = "\n") -> str:
    lines = [ENROL_HEADER.rstrip("\n")]
    for i in range(first, first + 24):
        group = "G1" if i % 2 else "G2"
        lines.append(f"add;{course};U{i:04d};student;gaddcreate;{group};Extra{i % 3}")
    lines += [
        f"shift;{course};U{first:04d};teacher;;;",
        f"del;{course};U{first + 1:04d};student;;;",
        f"add;{course};U9999;student;;;",  # no such user
        f'add;{course};U{first + 2:04d};"wizard";;;',  # no such role
        f"add;NOCOURSE;U{first + 3:04d};student;;;",  # no such course
    ]
    return eol.join(lines) + eol


def control_files() -> dict[str, bytes]:
    files = {
        "enrols_1.csv": _enrolments("MATH101", 1).encode(),
        "enrols_2.csv": _enrolments("PHYS101", 30, "\r\n").encode(),
        "enrols_3.csv": _enrolments("CHEM201", 60).encode(),
        "enrols_4.csv": _enrolments("HIST101", 90).encode(),
        "latin1_5.csv": _enrolments("LANG202", 130).replace("Extra", "Équipe").encode("latin-1"),
        "latin1_6.csv": _enrolments("ECON101", 160).encode("latin-1"),
    }
    members = ["courseid;groupid;userid;cmd"]
    members += [f"MATH102;MATH102-G1;U{i:04d};add" for i in range(101, 111)]
    members += ["MATH102;MATH102-G2;U0111;add", "MATH102;MATH102-G9;U0112;add"]
    files["members_1.csv"] = ("\n".join(members) + "\n").encode()
    members = ["courseid;groupid;userid;cmd"]
    members += [f"PHYS102;PHYS102-G2;U{i:04d};shift" for i in range(101, 115)]
    members += ["PHYS102;PHYS102-G1;U0250;add"]  # not enrolled in PHYS102
    files["members_2.csv"] = ("\n".join(members) + "\n").encode()
    return files


#: the courses each control file acts on (a failed line acts on none)
COURSES = {
    "enrols_1.csv": "MATH101",
    "enrols_2.csv": "PHYS101",
    "enrols_3.csv": "CHEM201",
    "enrols_4.csv": "HIST101",
    "latin1_5.csv": "LANG202",
    "latin1_6.csv": "ECON101",
    "members_1.csv": "MATH102",
    "members_2.csv": "PHYS102",
}


def postsync(
    workspace: Path, *args: str, faults: str = "", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "POSTSYNC_FAULTS"}
    if faults:
        env["POSTSYNC_FAULTS"] = faults
    env["XDG_STATE_HOME"] = str(workspace / "state")
    return subprocess.run(
        [*POSTSYNC, *args],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def build_template(root: Path) -> Path:
    """The workspace before any run: copied for each trial."""
    from tests.conftest import make_file

    template = root / "template"
    (template / "area").mkdir(parents=True)
    init = postsync(template, "db", "init", "sqlite:///moodle.db", "--demo")
    assert init.returncode == 0, init.stderr
    for name, content in control_files().items():
        (template / "area" / name).write_bytes(content)
    make_file(template / "area" / "archives" / "20260801-0100_enrols_1.csv", days=100)
    (template / "playbook.yml").write_text(PLAYBOOK)
    return template


def copy(template: Path, target: Path) -> Path:
    shutil.copytree(template, target)
    return target


def run(workspace: Path, faults: str = "") -> subprocess.CompletedProcess[str]:
    return postsync(workspace, "run", "playbook.yml", "-e", f"stamp={STAMP}", faults=faults)


@dataclass(frozen=True)
class CourseState:
    """What the sync decides in one course: enrolments, roles, group memberships."""

    enrolments: tuple[tuple[Any, ...], ...]
    roles: tuple[tuple[Any, ...], ...]
    members: tuple[tuple[Any, ...], ...]


def course_states(workspace: Path) -> dict[str, CourseState]:
    engine = create_engine(f"sqlite:///{workspace / 'moodle.db'}")
    try:
        with engine.connect() as conn:

            def rows(sql: str) -> dict[str, list[tuple[Any, ...]]]:
                out: dict[str, list[tuple[Any, ...]]] = {}
                for course, *rest in conn.execute(text(sql)):
                    out.setdefault(course, []).append(tuple(rest))
                return out

            enrolments = rows(
                "SELECT c.idnumber, u.idnumber, e.enrol, ue.status, ue.timestart, ue.timeend"
                " FROM mdl_user_enrolments ue JOIN mdl_enrol e ON e.id = ue.enrolid"
                " JOIN mdl_course c ON c.id = e.courseid JOIN mdl_user u ON u.id = ue.userid"
            )
            roles = rows(
                "SELECT c.idnumber, u.idnumber, r.shortname FROM mdl_role_assignments ra"
                " JOIN mdl_context x ON x.id = ra.contextid AND x.contextlevel = 50"
                " JOIN mdl_course c ON c.id = x.instanceid JOIN mdl_user u ON u.id = ra.userid"
                " JOIN mdl_role r ON r.id = ra.roleid"
            )
            members = rows(
                "SELECT c.idnumber, g.name, u.idnumber FROM mdl_groups_members m"
                " JOIN mdl_groups g ON g.id = m.groupid JOIN mdl_course c ON c.id = g.courseid"
                " JOIN mdl_user u ON u.id = m.userid"
            )
            courses = [r[0] for r in conn.execute(text("SELECT idnumber FROM mdl_course"))]
    finally:
        engine.dispose()
    return {
        c: CourseState(
            tuple(sorted(enrolments.get(c, []))),
            tuple(sorted(roles.get(c, []))),
            tuple(sorted(members.get(c, []))),
        )
        for c in courses
    }


def groups(workspace: Path) -> list[tuple[Any, ...]]:
    engine = create_engine(f"sqlite:///{workspace / 'moodle.db'}")
    try:
        with engine.connect() as conn:
            return sorted(
                tuple(r)
                for r in conn.execute(
                    text(
                        "SELECT c.idnumber, g.name, g.idnumber FROM mdl_groups g"
                        " JOIN mdl_course c ON c.id = g.courseid"
                    )
                )
            )
    finally:
        engine.dispose()


def files(area: Path, *, skip: tuple[str, ...] = (".postsync",)) -> dict[str, bytes]:
    """Every regular file under the area by relative path (hidden temporaries included)."""
    out: dict[str, bytes] = {}
    for dirpath, dirnames, names in os.walk(area):
        dirnames[:] = [d for d in dirnames if d not in skip]
        for name in names:
            path = Path(dirpath) / name
            out[path.relative_to(area).as_posix()] = path.read_bytes()
    return out
