"""Hostile control files: each gets a clear per-line or per-file error, and nothing but
the valid lines' changes reaches the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.sync.conftest import ENROLMENTS_STEP, Site

H = b"cmd;cid;uid;rolename;gcmd;g1\n"
GOOD = b"add;MATH101;U0001;student;;\n"
INJECTION = "'; DROP TABLE mdl_user; --"
QUOTED = '"' + INJECTION + '"'

#: name -> (file content, exit code, text expected in the output or the report,
#:          the tables the run may change)
CASES: dict[str, tuple[bytes, int, str, set[str]]] = {
    "invalid_utf8": (
        H + b"add;MATH101;U\xff\xfe01;student;;\n" + GOOD,
        2,
        "line 2: failed: invalid bytes for encoding utf-8",
        {"mdl_user_enrolments", "mdl_role_assignments", "mdl_cache_flags"},
    ),
    "invalid_header_bytes": (
        b"cmd;c\xffd;uid\n" + GOOD,
        3,
        "line 1: header is not valid utf-8",
        set(),
    ),
    "nul_byte": (
        H + b"add;MATH101;U00\x0002;student;;\n" + GOOD,
        2,
        "line 2: failed: line contains a NUL byte",
        {"mdl_user_enrolments", "mdl_role_assignments", "mdl_cache_flags"},
    ),
    "ten_megabyte_line": (  # over max_line_bytes (1 MiB): the file, never read whole
        H + b"add;MATH101;U0002;student;gaddcreate;" + b"G" * (10 * 1024 * 1024) + b"\n" + GOOD,
        3,
        "line 2: line longer than 1048576 bytes (max_line_bytes): nothing of the file applied",
        set(),
    ),
    "half_megabyte_value": (
        H + b"add;MATH101;U0002;student;gaddcreate;" + b"G" * (512 * 1024) + b"\n" + GOOD,
        2,
        "line 2: add student U0002 in MATH101: failed: group name of 524288 characters;"
        " Moodle allows 254",
        {"mdl_user_enrolments", "mdl_role_assignments", "mdl_cache_flags"},
    ),
    "wrong_separator": (
        b"cmd,cid,uid,rolename\nadd,MATH101,U0001,student\n",
        3,
        "(is the separator ';' right?)",
        set(),
    ),
    "missing_column": (b"cmd;cid;rolename\n" + GOOD, 3, "missing required column 'uid'", set()),
    "unknown_column": (b"cmd;cid;uid;rolename;colour\n", 3, "unknown column 'colour'", set()),
    "duplicated_column": (
        b"cmd;cid;uid;uid;rolename\n",
        3,
        "column 'uid' appears twice in the header",
        set(),
    ),
    "too_many_values": (
        H + b"add;MATH101;U0002;student;;;;extra\n" + GOOD,
        2,
        "line 2: failed: 8 values for 6 columns",
        {"mdl_user_enrolments", "mdl_role_assignments", "mdl_cache_flags"},
    ),
    "unbalanced_quote": (
        H + b'add;"MATH101;U0002;student;;\n' + GOOD,
        2,
        "line 2: failed: unbalanced quote",
        {"mdl_user_enrolments", "mdl_role_assignments", "mdl_cache_flags"},
    ),
    "sql_injection_identifiers": (
        H
        + f"add;{QUOTED};U0002;student;;\n".encode()
        + f"add;MATH101;{QUOTED};student;;\n".encode()
        + f"add;MATH101;U0003;{QUOTED};;\n".encode()
        + GOOD,
        2,
        f"line 3: add student {INJECTION} in MATH101: failed: no such user",
        {"mdl_user_enrolments", "mdl_role_assignments", "mdl_cache_flags"},
    ),
    "sql_injection_group_name": (
        H + f"add;MATH101;U0001;student;gaddcreate;{QUOTED}\n".encode(),
        0,
        "line 2: add student U0001 in MATH101: ok",
        {
            "mdl_user_enrolments",
            "mdl_role_assignments",
            "mdl_cache_flags",
            "mdl_groups",
            "mdl_groups_members",
            "mdl_course",  # its cache revision: a membership changed (Moodle 4.5.1 on)
        },
    ),
    "empty_file": (b"", 0, "0 lines: 0 changed, 0 unchanged, 0 failed", set()),
    "only_comments": (
        b"# nothing today\n// nor here\n(still nothing)\n- none\n",
        0,
        "0 lines: 0 changed",
        set(),
    ),
    "bom_and_crlf_only_header": (b"\xef\xbb\xbfcmd;cid;uid;rolename\r\n", 0, "0 lines", set()),
}


def report_text(site: Site) -> str:
    runs = site.area / ".postsync" / "runs"
    record = max(runs.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    entry = json.loads(record.read_text())["control_files"][0]
    return (runs / entry["report"]).read_text()


def changed_tables(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    return {t for t in after if after[t] != before[t]}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_control_file(site: Site, name: str) -> None:
    content, code, message, may_change = CASES[name]
    site.write("enrols.csv", content)
    other = site.write("groupmembers.csv", "courseid;groupid;userid\n")
    before = site.dump()
    result = site.run(steps=ENROLMENTS_STEP)
    assert result.code == code, result.out
    assert "Traceback" not in result.out + result.err
    assert message in result.out + report_text(site)
    assert changed_tables(before, site.dump()) == may_change
    assert other.read_text() == "courseid;groupid;userid\n"  # not processed, not touched
    assert site.query("SELECT COUNT(*) FROM mdl_user") == [(302,)]


def test_injected_group_name_is_plain_data(site: Site) -> None:
    site.write("enrols.csv", CASES["sql_injection_group_name"][0])
    assert site.run(steps=ENROLMENTS_STEP).code == 0
    assert site.groups_of("MATH101", "U0001") == [INJECTION]
