"""A sync rejects before anything changes what it cannot apply faithfully (a UTF-8 file
declared ISO-8859-1, a table prefix the database has not), and says what recovery
needs (the record) at the end of its output."""

from __future__ import annotations

import codecs
import os
import time

from runner.cli.demo import _enrolments
from tests.sync.conftest import Site


def test_a_utf8_file_declared_latin1_is_rejected_before_anything(site: Site) -> None:
    line = "add;MATH101;U0001;student;manual;;gaddcreate;Groupe Été;\n"
    site.write(
        "enrols.csv",
        codecs.BOM_UTF8 + ("cmd;cid;uid;rolename;enrol;starttime;gcmd;g1;g2\n" + line).encode(),
    )
    site.playbook("  - command: enrolments\n    file: enrols*.csv\n    encoding: iso-8859-1\n")
    before = site.dump()
    result = site.run()
    assert result.code == 3, result.out
    assert (
        "enrols.csv: line 1: the file starts with a UTF-8 byte order mark but is declared"
        " iso8859-1: it is UTF-8; declare `encoding: utf-8`"
    ) in result.out
    assert site.dump() == before
    assert (site.area / "enrols.csv").exists()


def test_a_wrong_prefix_names_the_prefix(site: Site) -> None:
    site.write("enrols.csv", _enrolments())
    site.playbook("  - command: enrolments\n    file: enrols*.csv\n", extra="prefix: mdl2_\n")
    result = site.run("--check")
    assert result.code == 3
    assert (
        "the database has no Moodle table with the prefix 'mdl2_'; is `prefix:` in the"
        " playbook right? (Moodle's default is mdl_)"
    ) in result.out


def test_the_record_and_run_id_end_the_text_output(site: Site) -> None:
    site.write("enrols.csv", _enrolments())
    site.playbook("  - command: enrolments\n    file: enrols*.csv\n")
    result = site.run()
    last = result.out.splitlines()[-1]
    (record,) = (site.area / ".postsync" / "runs").glob("*.json")
    assert last == f"RECORD   {record}  (run {record.stem})"
    again = site.run()
    assert again.out.splitlines()[-1].startswith("RECORD   ")


def test_a_database_lacking_some_tables_says_to_make_it_again(site: Site) -> None:
    site.execute("DROP TABLE mdl_cohort_members")
    site.write("enrols.csv", _enrolments())
    site.playbook("  - command: enrolments\n    file: enrols*.csv\n")
    result = site.run("--check")
    assert result.code == 3
    assert (
        "the database has no mdl_cohort_members (prefix 'mdl_'): a Moodle site has them; a"
        " database an older `postsync db init` made lacks the tables this version uses:"
        " make it again"
    ) in result.out


def test_a_feed_that_did_not_come_or_is_stale_fails_the_step(site: Site) -> None:
    step = "  - command: enrolments\n    file: enrols*.csv\n"
    result = site.run(steps=step + "    min_files: 1\n")
    assert result.code == 3, result.out
    assert (
        "0 ready control files match enrols*.csv, fewer than min_files 1: did the feed run?"
        " (nothing of this step applied)"
    ) in result.out
    assert site.run(steps=step).code == 0  # without min_files: nothing to do, skipped
    path = site.write("enrols.csv", _enrolments())
    old = time.time() - 30 * 3600
    os.utime(path, (old, old))
    before = site.dump()
    for args in ([], ["--check"]):
        result = site.run(*args, steps=step + "    min_files: 1\n    max_age_hours: 26\n")
        assert result.code == 3, result.out
        assert "the newest file matching enrols*.csv is 30.0 hours old, older than" in result.out
        assert "max_age_hours 26: a stale feed? (nothing of this step applied)" in result.out
    assert site.dump() == before and path.exists()
    os.utime(path, None)
    assert site.run(steps=step + "    max_age_hours: 26\n").code in (0, 2)


def test_max_unenrolments_rejects_a_file_that_unenrols_too_many(site: Site) -> None:
    header = "cmd;cid;uid;rolename\n"
    adds = "".join(f"add;MATH101;U{i:04d};student\n" for i in range(1, 11))
    site.write("enrols.csv", header + adds)
    step = "  - command: enrolments\n    file: enrols*.csv\n"
    assert site.run(steps=step).code == 0
    (enrolled,) = site.query(
        "SELECT COUNT(*) FROM mdl_user_enrolments ue JOIN mdl_enrol e ON e.id = ue.enrolid"
        " JOIN mdl_course c ON c.id = e.courseid WHERE c.idnumber = 'MATH101'"
    )[0]
    dels = "".join(f"del;MATH101;U{i:04d};student\n" for i in range(1, 8))
    site.write("enrols.csv", header + dels + "add;PHYS101;U0001;student\n")
    before = site.dump()
    for limit, message in (
        ("5", "it unenrols 7 users, more than max_unenrolments 5: a truncated export?"),
        (
            "'20%'",
            f"it unenrols 7 of the {enrolled} enrolments MATH101 had before the file"
            f" ({100 * 7 / enrolled:.0f}%), more than max_unenrolments 20%",
        ),
    ):
        for args in (["--check"], []):
            result = site.run(*args, steps=step + f"    max_unenrolments: {limit}\n")
            assert result.code == 3, result.out
            assert message in result.out, result.out
            assert "rejected" in result.out
        assert site.dump() == before  # nothing applied, not even the PHYS101 line
        assert (site.area / "enrols.csv").exists()
    share = f"'{100 * 7 / enrolled + 1:.0f}%'"
    for limit in ("7", share):
        result = site.run("--check", steps=step + f"    max_unenrolments: {limit}\n")
        assert result.code == 0, result.out


def test_max_unenrolments_in_a_preview_counts_the_runs_earlier_files(site: Site) -> None:
    """The share is of the course's enrolments before the file: in a preview, with what
    the run's earlier files would have added (the database does not have them)."""
    header = "cmd;cid;uid;rolename\n"
    site.write(
        "enrols0.csv", header + "".join(f"add;CHEM201;U{i:04d};student\n" for i in range(1, 11))
    )
    assert site.run(steps="  - command: enrolments\n    file: enrols0.csv\n").code == 0
    (site.area / "enrols0.csv").unlink()
    (start,) = site.query(
        "SELECT COUNT(*) FROM mdl_user_enrolments ue JOIN mdl_enrol e ON e.id = ue.enrolid"
        " JOIN mdl_course c ON c.id = e.courseid WHERE c.idnumber = 'CHEM201'"
    )[0]
    header = "cmd;cid;uid;rolename\n"
    site.write(
        "enrols1.csv", header + "".join(f"add;CHEM201;U{i:04d};student\n" for i in range(200, 220))
    )
    site.write(
        "enrols2.csv", header + "".join(f"del;CHEM201;U{i:04d};student\n" for i in range(200, 203))
    )
    # 3 of start + 20: under the limit; 3 of start alone would be over it
    limit = (100 * 3 / (start + 20) + 100 * 3 / max(start, 1)) / 2
    step = f"  - command: enrolments\n    file: enrols*.csv\n    max_unenrolments: '{limit:.1f}%'\n"
    preview = site.run("--check", steps=step)
    assert preview.code == 0, preview.out
    assert site.run(steps=step).code == 0


def test_max_unenrolments_share_protects_the_enrolments_a_course_had(site: Site) -> None:
    header = "cmd;cid;uid;rolename\n"
    step = "  - command: enrolments\n    file: enrols*.csv\n    max_unenrolments: '20%'\n"
    site.execute(
        "DELETE FROM mdl_user_enrolments WHERE enrolid IN (SELECT e.id FROM mdl_enrol e"
        " JOIN mdl_course c ON c.id = e.courseid WHERE c.idnumber = 'PHYS101')"
    )
    # a course with no enrolment before: the file's own additions are not protected
    adds = "".join(f"add;PHYS101;U{i:04d};student\n" for i in range(1, 31))
    site.write("enrols.csv", header + adds + "del;PHYS101;U0001;student\n")
    for args in (["--check"], []):
        result = site.run(*args, steps=step)
        assert result.code == 0, result.out
    assert site.enrolled("PHYS101", "U0001") == []
    assert site.enrolled("PHYS101", "U0002") == [("student", 0)]

    def enrols(kind: str, first: int, last: int) -> str:
        return "".join(f"{kind};PHYS101;U{i:04d};student\n" for i in range(first, last + 1))

    # the file's additions do not dilute the share: 116 added, then the 29 enrolments the
    # course had removed (29 of 145 is 20%, but all it had is gone)
    site.write("enrols.csv", header + enrols("add", 31, 146) + enrols("del", 2, 30))
    for args in (["--check"], []):
        result = site.run(*args, steps=step)
        assert result.code == 3, result.out
        assert (
            "it unenrols 29 of the 29 enrolments PHYS101 had before the file (100%)" in result.out
        ), result.out
    assert site.enrolled("PHYS101", "U0002") == [("student", 0)]
    assert site.enrolled("PHYS101", "U0031") == []
    # removing 9 of the 29 it had (31%) is too many, before or after adding 11
    for lines in (
        enrols("del", 2, 10) + enrols("add", 31, 41),
        enrols("add", 31, 41) + enrols("del", 2, 10),
    ):
        site.write("enrols.csv", header + lines)
        for args in (["--check"], []):
            result = site.run(*args, steps=step)
            assert result.code == 3, result.out
            assert (
                "it unenrols 9 of the 29 enrolments PHYS101 had before the file (31%)" in result.out
            ), result.out
    # 5 of 29 (17%) is allowed
    site.write("enrols.csv", header + enrols("add", 31, 41) + enrols("del", 2, 6))
    for args in (["--check"], []):
        assert site.run(*args, steps=step).code == 0
    assert site.enrolled("PHYS101", "U0002") == []
    # an earlier file of the run commits its additions: the next file's share is of them
    # too, in the preview as in the run (35 + 25 = 60; 12 of them are 20%, 13 too many)
    (site.area / "enrols.csv").unlink()
    site.write("enrols1.csv", header + enrols("add", 42, 66))
    site.write("enrols2.csv", header + enrols("del", 42, 54))
    for args in (["--check"], []):
        result = site.run(*args, steps=step)
        assert result.code == 3, result.out
        assert (
            "it unenrols 13 of the 60 enrolments PHYS101 had before the file (22%)" in result.out
        ), result.out
    assert site.enrolled("PHYS101", "U0066") == [("student", 0)]
    site.write("enrols2.csv", header + enrols("del", 42, 53))
    for args in (["--check"], []):
        assert site.run(*args, steps=step).code == 0
    assert site.enrolled("PHYS101", "U0042") == []


def test_a_control_file_dated_in_the_future_is_warned_of(site: Site) -> None:
    import json

    step = "  - command: enrolments\n    file: enrols*.csv\n    max_age_hours: 26\n"
    path = site.write("enrols.csv", _enrolments())
    ahead = time.time() + 5 * 3600
    os.utime(path, (ahead, ahead))
    warning = (
        "modified 5.0 hours in the future: clock skew between the machine that wrote it and"
        " this one? max_age_hours cannot tell its age"
    )
    result = site.run("--check", steps=step)
    assert result.code in (0, 2), result.out
    assert warning in result.out, result.out
    result = site.run("--output", "json", steps=step)
    assert result.code in (0, 2), result.out
    (sync,) = json.loads(result.out)["steps"]
    assert sync["items"][0] == {"action": "warning", "target": "enrols.csv", "detail": warning}
    assert "dated in the future" in sync["detail"]
    # a file dated now: no warning of its date (the step is WARNING: its lines failed)
    os.utime(path, None)
    again = site.run(steps=step).out
    assert "    warning " not in again and "in the future" not in again, again


def test_a_file_dated_in_the_future_does_not_make_a_stale_feed_fresh(site: Site) -> None:
    step = "  - command: enrolments\n    file: enrols*.csv\n    max_age_hours: 26\n"
    stale = site.write("enrols1.csv", _enrolments())
    old = time.time() - 100 * 3600
    os.utime(stale, (old, old))
    ahead = site.write("enrols2.csv", _enrolments())
    future = time.time() + 365 * 24 * 3600
    os.utime(ahead, (future, future))
    before = site.dump()
    for args in (["--check"], []):
        result = site.run(*args, steps=step)
        assert result.code == 3, result.out
        assert (
            "the newest file matching enrols*.csv not dated in the future is 100.0 hours old,"
            " older than max_age_hours 26"
        ) in result.out, result.out
    assert site.dump() == before
    assert stale.exists() and ahead.exists()
    # every file dated in the future: nothing tells the feed's age, a warning only
    stale.unlink()
    result = site.run("--check", steps=step)
    assert result.code in (0, 2), result.out
    assert "hours in the future: clock skew" in result.out, result.out
