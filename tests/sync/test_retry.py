"""`postsync retry RECORD` through the CLI, on real files and a SQLite site: a nightly
whose lines failed (a missing user, a misspelt course), the site fixed, the failed
lines previewed and applied again, exactly those, through the step that read them;
a second retry changes nothing, a retry of a retry goes on where it stopped, a users
file's passwords come from the bytes (never from the record), and what cannot be
retried is refused with a clear error."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from runner.db.columns import filled
from runner.db.releases import NEWEST, RELEASES
from runner.sync.users.passwords import Passwords
from tests.conftest import Result, snapshot
from tests.sync.conftest import Site

#: the site tests run on SQLite: what a retry adds is the same on every database
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

HEADER = b"cmd;cid;uid;rolename\r\n"
LINES = [
    b"add;MATH101;U0001;student\r\n",
    b"add;MATH101;U9999;student\r\n",  # no such user, until the site is fixed
    b"add;MATHS101;U0002;student\r\n",  # a misspelt course
    b"add;PHYS101;U0003;student\r\n",
]
# a comment before the header: the failed lines are lines 4 and 5 of the file
CONTROL = b"# export du SI\r\n" + HEADER + b"".join(LINES)
STEPS = "  - command: enrolments\n    file: enrols*.csv\n    min_files: 1\n"
# names that tell the runs apart, whatever the minute (`-e stamp=`): the default
# write_retry_file's, but for the stamp
VARS = "vars:\n  stamp: \"{{ now | strftime('%Y%m%d-%H%M') }}\"\n"
POST = """\
post_treatments:
  - clean_empty_groups: {}
  - save_report: {dest: "reports/{{ stamp }}_report_{{ file.name }}"}
  - archive_control_files: {dest: "archives/{{ stamp }}_{{ file.name }}"}
  - write_retry_file:
      dest: "{{ file.parent }}/{{ file.feed_stem }}_tryback_{{ stamp }}{{ file.suffix }}"
  - delete_control_files: {}
  - purge_old_files: {paths: [archives, reports], older_than_days: 90}
"""
SKIPPED = "not run for a retry: it acts on run {run}'s files, courses or area"


def playbook(site: Site, steps: str = STEPS) -> Path:
    path = site.playbook(steps, VARS)
    path.write_text(path.read_text() + POST)
    return path


def retry(site: Site, record: Path, stamp: str, *args: object) -> Result:
    return site.cli("retry", record, "-e", f"stamp={stamp}", *args)


def create_user(site: Site, idnumber: str) -> None:
    """The site fixed: the user the feed names is created (as Moodle would)."""
    engine = create_engine(site.url)
    try:
        with engine.begin() as conn:
            conn.execute(
                site.tables.user.insert(),
                filled(site.tables.user)
                | {
                    "auth": "manual",
                    "confirmed": 1,
                    "mnethostid": 1,
                    "username": idnumber.lower(),
                    "idnumber": idnumber,
                    "firstname": "New",
                    "lastname": "User",
                    "email": f"{idnumber.lower()}@example.org",
                },
            )
    finally:
        engine.dispose()


def items(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("    ")]


def statuses(out: str) -> list[str]:
    return [line for line in out.splitlines() if line[:8].strip() in ("OK", "CHANGED", "SKIPPED")]


def record_of(result: Result) -> tuple[Path, str]:
    match = re.search(r"^RECORD   (\S+)  \(run (\S+)\)$", result.out, re.M)
    assert match, result.out
    return Path(match[1]), match[2]


def nightly(site: Site) -> tuple[Path, str]:
    site.write("enrols.csv", CONTROL)
    playbook(site)
    result = site.run("-e", "stamp=20261204-0230")
    assert result.code == 2, result.out + result.err
    return record_of(result)


@SQLITE
def test_retry_applies_exactly_the_failed_lines_once_the_site_is_fixed(site: Site) -> None:
    record, nightly_id = nightly(site)
    saved = record.read_bytes()
    archives = snapshot(site.area / "archives")
    assert not (site.area / "enrols.csv").exists()  # deleted by the nightly, archived
    create_user(site, "U9999")
    before, area = site.dump(), snapshot(site.area)
    preview = retry(site, record, "20261204-1000", "--check")
    # a preview changes nothing: not the site, not the area, not even postsync's state
    assert site.dump() == before
    assert snapshot(site.area) == area
    # the run's own views: the failed lines alone, under their file
    failed = retry(site, record, "20261204-1000", "--check", "--failed")
    assert failed.code == 2, failed.out + failed.err
    assert "no such course (idnumber MATHS101)" in failed.out
    assert "U9999" not in failed.out  # it does not fail any more
    real = retry(site, record, "20261204-1000")
    assert preview.code == real.code == 2, real.out + real.err
    assert items(preview.out) == items(real.out)
    again, retry_id = record_of(real)
    assert items(real.out) == [
        f"    sync enrols.csv  (failed lines of run {nightly_id} retried: 2 lines: 1 changed,"
        " 0 unchanged, 1 failed)",
        "    write reports/20261204-1000_report_enrols.csv  (report of enrols.csv, text)",
        "    write enrols_tryback_20261204-1000.csv  (1 failed line of enrols.csv)",
    ]
    skipped = f"({SKIPPED.format(run=nightly_id)})"
    assert statuses(real.out) == [
        f"CHANGED  enrolments  (1 file, 2 lines of run {nightly_id} retried)",
        f"SKIPPED  clean_empty_groups  {skipped}",
        "CHANGED  save_report  (1 report)",
        f"SKIPPED  archive_control_files  {skipped}",
        "CHANGED  write_retry_file  (1 retry file)",
        f"SKIPPED  delete_control_files  {skipped}",
        f"SKIPPED  purge_old_files  {skipped}",
    ]
    # exactly the failed lines: the user now found is enrolled, the misspelt course
    # still fails, the lines that succeeded were not applied again
    assert site.enrolled("MATH101", "U9999") == [("student", 0)]
    after = site.dump()
    changed = {t for t in after if after[t] != before[t]}
    assert changed <= {"mdl_user_enrolments", "mdl_role_assignments", "mdl_cache_flags"}
    assert len(after["mdl_user_enrolments"]) == len(before["mdl_user_enrolments"]) + 1
    # the report names the control file's own line numbers, of the retried lines only
    report = (site.area / "reports" / "20261204-1000_report_enrols.csv").read_text()
    assert report.splitlines()[-2:] == [
        "line 4: add student U9999 in MATH101: ok",
        "line 5: add student U0002 in MATHS101: failed: no such course (idnumber MATHS101)",
    ]
    # the line still failing goes to a retry file of its own, byte for byte
    assert (site.area / "enrols_tryback_20261204-1000.csv").read_bytes() == HEADER + LINES[2]
    # the control file is the nightly's: never archived, deleted nor recreated again
    assert snapshot(site.area / "archives") == archives
    assert not (site.area / "enrols.csv").exists()
    # a new record, naming the run it retried; the nightly's is left as it was
    assert record.read_bytes() == saved
    data = json.loads(again.read_text())
    assert data["run_id"] == retry_id
    assert data["retries"] == nightly_id
    (entry,) = data["control_files"]
    assert entry["path"] == str(site.area / "enrols.csv")
    assert entry["step"] == "enrolments enrols*.csv"
    assert entry["retry_of"] == nightly_id
    assert entry["feed_sha256"] == hashlib.sha256(CONTROL).hexdigest()
    assert entry["archive"] == json.loads(saved)["control_files"][0]["archive"]
    assert entry["retry_file"] == str(site.area / "enrols_tryback_20261204-1000.csv")
    assert [line["number"] for line in entry["failed_lines"]] == [5]
    # `post` of the retry's record: what is done is done; still no archive, no deletion
    post = site.cli("post", again, "-e", "stamp=20261204-1000")
    assert post.code == 2, post.out
    assert items(post.out) == []
    assert f"SKIPPED  archive_control_files  {skipped}" in post.out


@SQLITE
def test_a_second_retry_changes_nothing_and_a_retry_of_a_retry_goes_on(site: Site) -> None:
    record, nightly_id = nightly(site)
    create_user(site, "U9999")
    first = retry(site, record, "20261204-1000")
    assert first.code == 2, first.out
    first_record, first_id = record_of(first)
    before = site.dump()
    # the same record again: the line the retry applied is not retried; the one still
    # failing is, and still fails; nothing changes in the site
    again = retry(site, record, "20261204-1100")
    assert again.code == 2, again.out
    assert site.dump() == before
    second_record, _second_id = record_of(again)
    assert items(again.out) == [
        f"    sync enrols.csv  (failed lines of run {nightly_id} retried: 1 line: 0 changed,"
        " 0 unchanged, 1 failed)",
        "    write reports/20261204-1100_report_enrols.csv  (report of enrols.csv, text)",
        "    write enrols_tryback_20261204-1100.csv  (1 failed line of enrols.csv)",
    ]
    # the line still fails: nothing changed, lines failed (a warning, as for a sync step)
    assert "WARNING  enrolments" in again.out
    # a retry file of a retry is named as the feed's: never a second _tryback_
    assert (site.area / "enrols_tryback_20261204-1100.csv").read_bytes() == HEADER + LINES[2]
    assert not list(site.area.glob("*_tryback_*_tryback_*"))
    # the course's idnumber corrected: the retry's own record is retried
    site.execute("UPDATE mdl_course SET idnumber = 'MATHS101' WHERE idnumber = 'MATH102'")
    last = retry(site, first_record, "20261204-1200")
    assert last.code == 0, last.out
    _last, last_id = record_of(last)
    assert items(last.out)[0] == (
        f"    sync enrols.csv  (failed lines of run {first_id} retried: 1 line: 1 changed,"
        " 0 unchanged, 0 failed)"
    )
    assert site.enrolled("MATHS101", "U0002") == [("student", 0)]
    # every line applied: whichever of the three records is given, nothing is left
    done = site.dump()
    for given in (record, first_record, second_record):
        result = retry(site, given, "20261204-1300")
        assert result.code == 0, result.out
        assert "SKIPPED  enrolments  (nothing left to retry of run" in result.out
        assert f"were applied by run {last_id})" in result.out, result.out
        assert "RECORD" not in result.out  # nothing retried: no record
        assert site.dump() == done
    assert not list(site.area.glob("*20261204-1300*"))


USERS_HEADER = b"username;idnumber;firstname;lastname;auth;password\r\n"
PASSWORD = "Em@il-Pass-42"
USERS = [
    b"p1;P1;Ann;One;manual;Manual-Pass-1\r\n",
    b"p2;P2;Bob;Two;email;" + PASSWORD.encode() + b"\r\n",  # email auth: not enabled yet
]
USERS_STEPS = "  - command: users\n    file: userimport*.csv\n" + STEPS


def users_nightly(site: Site) -> tuple[Path, str]:
    site.write("userimport.csv", USERS_HEADER + b"".join(USERS)).chmod(0o600)
    site.write("enrols.csv", CONTROL)
    playbook(site, USERS_STEPS)
    result = site.run("-e", "stamp=20261204-0230")
    assert result.code == 2, result.out + result.err
    record, run_id = record_of(result)
    entry = json.loads(record.read_text())["control_files"][0]
    assert entry["failed_lines"][0]["raw"] is None  # the record keeps no password
    assert entry["failed_lines"][0]["text"] == "p2;P2;Bob;Two;email;***"
    site.execute("INSERT INTO mdl_config (name, value) VALUES ('auth', 'email')")
    create_user(site, "U9999")
    return record, run_id


def password_of(site: Site, username: str) -> str:
    ((hashed,),) = site.query("SELECT password FROM mdl_user WHERE username = :u", u=username)
    return str(hashed)


@SQLITE
@pytest.mark.parametrize("source", ["archive", "retry file"])
def test_a_users_files_passwords_come_from_its_bytes(site: Site, source: str) -> None:
    """A line the record keeps masked is read back, byte for byte, from the archive
    (the control file is deleted) or, the archive gone too, from the retry file; the
    password is never printed."""
    record, _run_id = users_nightly(site)
    if source == "retry file":
        for archive in (site.area / "archives").glob("*userimport*"):
            archive.unlink()
    results = [
        retry(site, record, "20261204-1000", "--check", "--diff", "-v"),
        retry(site, record, "20261204-1000", "-v"),
    ]
    assert results[1].code == 2, results[1].out + results[1].err  # MATHS101 still fails
    for result in results:
        assert PASSWORD not in result.out + result.err
    assert "sync userimport.csv  (failed lines of run" in results[1].out
    hashed = password_of(site, "p2")
    # hashed as the site's release does (db init's: the newest)
    assert Passwords.of(RELEASES[NEWEST].version).matches(PASSWORD, hashed), hashed
    for path in (site.area / ".postsync").rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


@SQLITE
def test_masked_lines_with_no_bytes_left_fail_their_file_alone(site: Site) -> None:
    """The control file, its archive and its retry file gone (or the retry file edited,
    or the record naming a copy outside the area and its roots): the users file's
    lines cannot be retried, and the retry says why; the enrolments file's lines are
    retried all the same (exit 3)."""
    record, run_id = users_nightly(site)
    elsewhere = site.root / "elsewhere.csv"
    for archive in (site.area / "archives").glob("*userimport*"):
        elsewhere.write_bytes(archive.read_bytes())  # the very bytes, out of bounds
        archive.unlink()
    data = json.loads(record.read_text())
    data["control_files"][0]["archive"] = str(elsewhere)
    record.write_text(json.dumps(data))
    (retry_file,) = site.area.glob("userimport_tryback_*")
    retry_file.write_bytes(retry_file.read_bytes().replace(b"Bob", b"Robert"))  # not as read
    result = retry(site, record, "20261204-1000")
    assert result.code == 3, result.out + result.err
    assert (
        "sync userimport.csv  (rejected: its failed line holds a password, which the run"
        " record does not keep, and neither the control file, its archive nor its retry"
        " file is there as the sync read it: nothing of it retried" in result.out
    )
    assert "FAILED   users" in result.out
    assert site.query("SELECT id FROM mdl_user WHERE username = 'p2'") == []
    # the enrolments file's lines: retried
    assert f"sync enrols.csv  (failed lines of run {run_id} retried: 2 lines:" in result.out
    assert site.enrolled("MATH101", "U9999") == [("student", 0)]
    retry_file.unlink()
    assert retry(site, record, "20261204-1100").code == 3


@SQLITE
def test_what_cannot_be_retried_is_refused_before_anything_changes(site: Site) -> None:
    record, _run_id = nightly(site)
    create_user(site, "U9999")
    before = site.dump()
    # a playbook without the step that read the file
    other = site.root / "other.yml"
    other.write_text(
        f'name: Other\narea: area\ndatabase: "{site.url}"\n'
        "sync:\n  - command: enrolments\n    file: inscriptions*.csv\n"
    )
    refused = site.cli("retry", record, "--playbook", other)
    assert refused.code == 4, refused.out
    assert (
        f"{record}:1:1: control_files.0.step: no sync step of {other} is the one that applied"
        f" {site.area / 'enrols.csv'} (enrolments enrols*.csv)" in refused.err
    )
    # two steps of the same command and pattern: which one read the file is not known
    twice = site.root / "twice.yml"
    twice.write_text(f'name: Twice\narea: area\ndatabase: "{site.url}"\nsync:\n{STEPS}{STEPS}')
    refused = site.cli("retry", record, "--playbook", twice)
    assert refused.code == 4, refused.out
    assert (
        f"control_files.0.step: 2 sync steps of {twice} are `enrolments enrols*.csv`: which"
        f" one applied {site.area / 'enrols.csv'} cannot be told" in refused.err
    )
    # a run whose sync did not finish: its failed lines are not all known
    data: dict[str, Any] = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "sync_complete": False}))
    unfinished = retry(site, record, "20261204-1000")
    assert unfinished.code == 4
    assert "did not finish its sync steps" in unfinished.err
    assert "then retry the record of that run" in unfinished.err
    assert site.cli("retry", site.area / ".postsync" / "runs" / "nope.json").code == 4
    assert site.dump() == before


def test_retry_help_says_how_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    from runner.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["retry", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "postsync retry /srv/feed/.postsync/runs/20261204T023000-3fa9c1.json --check" in out
    assert "Exit codes as for `run`." in out


@SQLITE
def test_a_record_of_an_older_postsync_finds_its_step_by_its_glob(site: Site) -> None:
    """A record saved before records named the step (and the archive, the retry file):
    the first step of the file's command whose glob reads it applies its lines."""
    record, nightly_id = nightly(site)
    data: dict[str, Any] = json.loads(record.read_text())
    new = ("step", "retry_of", "feed_sha256", "archive", "retry_file")
    data["control_files"] = [
        {k: v for k, v in entry.items() if k not in new} for entry in data["control_files"]
    ]
    data.pop("retries")
    record.write_text(json.dumps(data))
    create_user(site, "U9999")
    result = retry(site, record, "20261204-1000")
    assert result.code == 2, result.out + result.err
    assert items(result.out)[0] == (
        f"    sync enrols.csv  (failed lines of run {nightly_id} retried: 2 lines: 1 changed,"
        " 0 unchanged, 1 failed)"
    )
    assert site.enrolled("MATH101", "U9999") == [("student", 0)]
