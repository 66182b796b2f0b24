"""A retry file dropped back in the area, through `postsync run` on a SQLite site: the
step that wrote it reads it (include_retry_files), before the feed's own files; min_files
and max_age_hours judge the feed's own files only, and take templates, so a daytime run
of the nightly playbook applies a dropped file; a retry file that fails again gets a new
stamp, never a second `_tryback_`."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.conftest import snapshot
from tests.sync.conftest import Site
from tests.sync.test_retry import create_user, items

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

HEADER = "cmd;cid;uid;rolename\n"
NIGHTLY = """\
  - command: users
    file: userimport*.csv
    include_retry_files: true
  - command: enrolments
    file: enrols*.csv
    include_retry_files: true
    min_files: "{{ 1 if nightly else 0 }}"
    max_age_hours: "{{ 26 if nightly else '' }}"
"""
POST = """\
post_treatments:
  - archive_control_files: {}
  - write_retry_file: {}
  - delete_control_files: {}
"""


def playbook(site: Site) -> Path:
    path = site.playbook(NIGHTLY, "vars:\n  nightly: true\n")
    path.write_text(path.read_text() + POST)
    return path


def dropped(site: Site, name: str, body: str, hours: float = 0) -> Path:
    path = site.write(name, body)
    when = time.time() - hours * 3600
    os.utime(path, (when, when))
    return path


def test_a_retry_file_dropped_back_is_read_by_the_step_that_wrote_it(site: Site) -> None:
    playbook(site)
    # last night's retry file, its data fixed (the course's name), dropped back: one
    # line still fails (U8888 is no user of the site)
    retry = dropped(
        site,
        "enrols_tryback_20261204-0230.csv",
        HEADER + "add;MATH101;U9999;student\nadd;MATH101;U8888;student\n",
    )
    create_user(site, "U9999")
    before, area = site.dump(), snapshot(site.area, own_state=False)
    # the nightly without its feed: min_files is not fooled by the retry file
    result = site.run()
    assert result.code == 3, result.out
    assert (
        "FAILED   enrolments  (0 ready control files match enrols*.csv (1 retry file not"
        " counted), fewer than min_files 1: did the feed run? (nothing of this step applied))"
    ) in result.out
    assert site.dump() == before
    assert snapshot(site.area, own_state=False) == area
    # the feed comes: the retry file is read first (its lines are an earlier feed's),
    # by the enrolments step only (the users step reads none of another feed's)
    dropped(site, "enrols.csv", HEADER + "add;PHYS101;U0003;student\n")
    result = site.run()
    assert result.code == 2, result.out
    stamp = time.strftime("%Y%m%d-%H%M")
    assert items(result.out)[:2] == [
        "    sync enrols_tryback_20261204-0230.csv  (2 lines: 1 changed, 0 unchanged, 1 failed)",
        "    sync enrols.csv  (1 line: 1 changed, 0 unchanged, 0 failed)",
    ]
    assert "SKIPPED  users  (no file matches userimport*.csv)" in result.out
    assert site.enrolled("MATH101", "U9999") == [("student", 0)]
    assert site.enrolled("PHYS101", "U0003") == [("student", 0)]
    # archived and deleted as a control file of the run; its line still failing goes
    # to a retry file named as the feed's, with a new stamp
    assert not retry.exists()
    assert (site.area / "archives" / f"{stamp}_enrols_tryback_20261204-0230.csv").exists()
    again = site.area / f"enrols_tryback_{stamp}.csv"
    assert again.read_text() == HEADER + "add;MATH101;U8888;student\n"
    assert f"    write enrols_tryback_{stamp}.csv  (1 failed line of" in result.out
    assert not list(site.area.glob("*_tryback_*_tryback_*"))


def test_without_include_retry_files_a_retry_file_is_left_alone(site: Site) -> None:
    site.write("enrols_tryback_20261204-0230.csv", HEADER + "add;MATH101;U0001;student\n")
    result = site.run(steps="  - command: enrolments\n    file: enrols*.csv\n")
    assert (
        "SKIPPED  enrolments  (no file matches enrols*.csv (1 retry file left alone: no"
        " include_retry_files))"
    ) in result.out
    # a step naming its file reads that file's retry files too
    named = "  - command: enrolments\n    file: enrols.csv\n    include_retry_files: true\n"
    assert "sync enrols_tryback_20261204-0230.csv" in site.run(steps=named).out


def test_a_daytime_run_applies_a_dropped_file_with_templated_min_files(site: Site) -> None:
    playbook(site)
    dropped(site, "enrols_tryback_20261204-0230.csv", HEADER + "add;MATH101;U0001;student\n")
    assert site.run().code == 3  # the nightly: the feed did not come
    daytime = site.run("-e", "nightly=")  # min_files 0, no max_age_hours
    assert daytime.code == 0, daytime.out
    assert "sync enrols_tryback_20261204-0230.csv  (1 line: 1 changed" in daytime.out
    assert site.enrolled("MATH101", "U0001") == [("student", 0)]


def test_a_fresh_retry_file_does_not_make_a_stale_feed_fresh(site: Site) -> None:
    playbook(site)
    dropped(site, "enrols.csv", HEADER + "add;PHYS101;U0003;student\n", hours=30)
    dropped(site, "enrols_tryback_20261204-0230.csv", HEADER + "add;MATH101;U0001;student\n")
    before = site.dump()
    for args in (["--check"], []):
        result = site.run(*args)
        assert result.code == 3, result.out
        assert "the newest file matching enrols*.csv is 30.0 hours old" in result.out
    assert site.dump() == before
    # by day, no limit: both applied
    daytime = site.run("-e", "nightly=")
    assert daytime.code == 0, daytime.out


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "min_files: \"{{ 'many' }}\"",
            "sync[0].min_files: renders to 'many', not an integer >= 0",
        ),
        ('min_files: "{{ -1 }}"', "sync[0].min_files: renders to '-1', not an integer >= 0"),
        (
            'max_age_hours: "{{ 0 }}"',
            "sync[0].max_age_hours: renders to '0', not a number of hours > 0",
        ),
        (
            "max_age_hours: \"{{ 'a day' }}\"",
            "sync[0].max_age_hours: renders to 'a day', not a number of hours > 0",
        ),
        ("max_age_hours: soon", "sync[0].max_age_hours: 'soon' is not a number (nor a template"),
        (
            'min_files: "{{ nightly_files }}"',
            "sync[0].min_files: undefined variable 'nightly_files'",
        ),
    ],
)
def test_templated_feed_checks_are_located_errors(site: Site, option: str, message: str) -> None:
    path = site.playbook(f"  - command: enrolments\n    file: enrols*.csv\n    {option}\n")
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student\n")
    before = site.dump()
    column = 4 + option.index(":") + 3  # the value's, on line 7
    for args in (("run", path), ("run", path, "--check"), ("validate", path)):
        result = site.cli(*args)
        assert result.code == 4, result.out + result.err
        assert f"{path}:7:{column}: {message}" in result.err, result.err
    assert site.dump() == before


def test_a_retry_file_failing_again_under_its_own_name_is_kept(site: Site) -> None:
    """A retry file dropped back whose name is the one tonight's retry file would get
    (the same stamp: a daytime retry in the minute it was written): its lines failing
    again go to a retry file of their own (`.1`), never counted as written by the file
    about to be deleted."""
    stamp = "20261204-0230"
    dest = "{{ file.parent }}/{{ file.feed_stem }}_tryback_{{ stamp }}{{ file.suffix }}"
    path = site.playbook(NIGHTLY, f"vars:\n  nightly: false\n  stamp: '{stamp}'\n")
    path.write_text(
        path.read_text()
        + POST.replace("write_retry_file: {}", f'write_retry_file: {{dest: "{dest}"}}')
    )
    body = HEADER + "add;MATH101;U8888;student\n"  # no such user: fails again
    dropped(site, f"enrols_tryback_{stamp}.csv", body)
    result = site.run()
    assert result.code == 2, result.out
    assert f"    write enrols_tryback_{stamp}.1.csv  (1 failed line of" in result.out
    assert f"    delete enrols_tryback_{stamp}.csv  (archived)" in result.out
    assert (site.area / f"enrols_tryback_{stamp}.1.csv").read_text() == body
    assert not (site.area / f"enrols_tryback_{stamp}.csv").exists()


def test_post_of_a_run_whose_retry_file_was_taken_back_writes_none_again(site: Site) -> None:
    """`post RECORD` of a night whose retry file was since dropped back, applied and
    deleted: a later run's record names it as a control file, so none is written again
    (its lines would be applied twice). A retry file merely deleted is written again
    (tests/treatments/test_files.py)."""
    playbook(site)
    dropped(site, "enrols.csv", HEADER + "add;MATH101;U9999;student\n")
    night = site.run()
    assert night.code == 2, night.out
    record = Path(night.out.split("RECORD ", 1)[1].split()[0])
    (retry_file,) = site.area.glob("enrols_tryback_*.csv")
    create_user(site, "U9999")
    dropped(site, "enrols.csv", HEADER + "add;PHYS101;U0003;student\n")
    day = site.run()
    assert day.code == 0, day.out
    assert not retry_file.exists()  # applied, archived, deleted
    for args in (("--check",), ()):
        post = site.cli("post", record, *args)
        assert (
            "write_retry_file  (nothing to write, 1 retry file already taken back and applied)"
        ) in post.out
        assert not list(site.area.glob("enrols_tryback_*.csv")), post.out
