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
        "0 control files match enrols*.csv, fewer than min_files 1: did the feed run?"
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
