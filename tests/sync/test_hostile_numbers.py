"""Values that look like numbers to `str.isdigit` and are not ones to `int` ('²'), or
are too long for it (5,000 digits), in every column read as a number, on SQLite,
PostgreSQL and MariaDB: each line fails with its reason, the run goes on (exit 2),
never an internal error."""

from __future__ import annotations

import pytest

from tests.sync.conftest import Site
from tests.sync.test_enrolments import report

HUGE = "7" * 5000
ODD = ("²", "٣", HUGE)


def run(site: Site, steps: str) -> str:
    result = site.run(steps=steps)
    assert result.code == 2, result.out + result.err
    assert "Traceback" not in result.err and "internal error" not in result.out + result.err
    return result.out


def test_a_course_id_a_time_or_a_user_that_is_no_number(site: Site) -> None:
    [(math101,)] = site.query("SELECT id FROM mdl_course WHERE idnumber = 'MATH101'")
    body = "".join(f"add;{v};U0001;student;;\n" for v in ODD)
    body += "".join(f"add;{math101};U0001;student;{v};\n" for v in ODD)
    site.write("enrols.csv", "cmd;cid;uid;rolename;starttime;endtime\n" + body)
    run(site, "  - command: enrolments\n    file: enrols.csv\n    course_key: id\n")
    lines = report(site)
    assert all(": failed: " in line for line in lines), lines
    assert sum("no such course" in line for line in lines) == 3
    assert sum("bad starttime" in line for line in lines) == 3


def test_a_cohort_id_a_category_or_a_flag_that_is_no_number(site: Site) -> None:
    body = "".join(f"add;{v};C;\n" for v in ODD)
    site.write("cohorts.csv", "cmd;cid;cname;ccatcontext\n" + body)
    body = "".join(f"add;X{i};C;{v}\n" for i, v in enumerate(ODD))
    site.write("cohorts2.csv", "cmd;cidnumber;cname;ccatcontext\n" + body)
    steps = (
        "  - command: cohorts\n    file: cohorts.csv\n    cohort_key: id\n"
        "    create_cohorts: false\n"
        "  - command: cohorts\n    file: cohorts2.csv\n"
    )
    out = run(site, steps)
    assert "3 failed" in out, out
    body = "".join(f"u{i};F;L;{v}\n" for i, v in enumerate(ODD))
    site.write("users.csv", "username;firstname;lastname;suspended\n" + body)
    run(site, "  - command: users\n    file: users.csv\n    user_key: username\n")
    assert all("suspended must be one of 0, 1" in line for line in report(site))


@pytest.mark.parametrize("diff", ["false", "true"])
def test_a_snapshot_keyed_by_no_number(site: Site, diff: str) -> None:
    body = "".join(f"add;MATH101;{v};student\n" for v in (*ODD, "U0001"))
    site.write("enrols.csv", "cmd;cid;uid;rolename\n" + body)
    steps = (
        "  - command: enrolments\n    file: enrols.csv\n    mode: snapshot\n"
        f"    missing: keep\n    diff: {diff}\n    user_key: id\n"
    )
    run(site, steps)
    assert sum(": failed: " in line for line in report(site)) == 4
