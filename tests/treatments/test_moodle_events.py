"""moodle_events without PHP: the journal's parts as the replay reads them (checked
whole, never through a symlink, a FIFO or a directory), its progress file, the counts
the preview shows, and the script's progress read from its output."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from runner.core.errors import StepError
from runner.db.tables import moodle_tables
from runner.treatments.events_journal import (
    events_of,
    journal_parts,
    read_progress,
    said_progress,
    tally,
    write_feed,
    write_progress,
)
from tests.conftest import CLI
from tests.pgserver import PostgresServer
from tests.sync.conftest import ENROLMENTS_STEP, Site
from tests.treatments import test_moodle_caches as caches
from tests.treatments.test_moodle_caches import SCRIPT_USER, gone, moodle_site

LINES = [
    {"seq": 1, "kind": "user_enrolment_created", "enrolid": 2, "userid": 3},
    {"seq": 2, "kind": "role_assigned", "contextid": 5, "userid": 3, "roleid": 5},
    {"seq": 3, "kind": "course_left", "contextid": 5, "userid": 4},
    {"seq": 4, "kind": "role_assigned", "contextid": 5, "userid": 4, "roleid": 5},
]


def part(tmp_path: Path, name: str = "001_enrols.csv.journal", lines: list | None = None) -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(line) + "\n" for line in lines or LINES))
    return path


def test_the_preview_counts_the_events_past_the_progress(tmp_path: Path) -> None:
    first = part(tmp_path)
    second = part(tmp_path, "002_groups.csv.journal", [{"seq": 1, "kind": "group_deleted"}])
    parts = [(p, p.name) for p in journal_parts(tmp_path)]
    assert [p for p, _ in parts] == [first, second]
    counted = tally(parts, {})
    assert dict(counted.events) == {
        "user_enrolment_created": 1,
        "role_assigned": 2,
        "group_deleted": 1,
    }
    assert (counted.silent, counted.done, counted.total) == (1, 0, 4)
    later = tally(parts, {first.name: 2})
    assert dict(later.events) == {"role_assigned": 1, "group_deleted": 1}
    assert (later.done, later.silent) == (2, 1)


def test_the_feed_holds_the_lines_left_with_their_part(tmp_path: Path) -> None:
    first = part(tmp_path)
    out = tmp_path / "feed"
    with open(out, "w") as feed:
        assert write_feed([(first, "x")], {first.name: 3}, feed) == 1
    (line,) = [json.loads(t) for t in out.read_text().splitlines()]
    assert line["seq"] == 4 and line["part"] == first.name


USERS = [
    {"seq": 1, "kind": "user_created", "user": {"auth": "manual"}, "password_set": True},
    {"seq": 2, "kind": "user_created", "user": {"auth": "manual"}, "password_set": False},
    {"seq": 3, "kind": "user_updated", "user": {"auth": "manual"}, "after": {"suspended": 1},
     "password_changed": True, "password_set": True},
    # a change to an auth keeping no password: 'not cached' written, no password given
    {"seq": 4, "kind": "user_updated", "user": {"auth": "manual"}, "after": {"auth": "ldap"},
     "password_changed": True, "password_set": False},
    {"seq": 5, "kind": "user_updated", "user": {"auth": "ldap"}, "after": {"auth": "manual"},
     "password_changed": True, "password_set": True},
]  # fmt: skip


def test_a_password_the_line_gave_is_replayed_before_the_users_event(tmp_path: Path) -> None:
    """user_password_updated, as Moodle's user_create_user and user_update_user trigger
    it before their own event: for a new user with a password and a password changed
    to one the line gave, not for an auth change that leaves none in Moodle."""
    users = part(tmp_path, "001_users.csv.journal", USERS)
    assert [events_of(line) for line in USERS] == [
        ("user_password_updated", "user_created"),
        ("user_created",),
        ("user_password_updated", "user_updated"),
        ("user_updated",),
        ("user_password_updated", "user_updated"),
    ]
    counted = tally([(users, "x")], {})
    assert dict(counted.events) == {
        "user_created": 2,
        "user_updated": 3,
        "user_password_updated": 3,
    }
    out = tmp_path / "feed"
    with open(out, "w") as feed:
        write_feed([(users, "x")], {}, feed)
    fed = [json.loads(t) for t in out.read_text().splitlines()]
    assert [line.get("password_updated", False) for line in fed] == [
        True,
        False,
        True,
        False,
        True,
    ]


def _with(kind: str, owner: str = "user_deleted", **fields: Any) -> dict[str, Any]:
    return {"kind": kind, "file": "users.csv", "line": 2, "userid": 7, **fields, "with": owner}


#: a user deleted with two enrolments in course 2 (manual and self), one in course 3, a
#: role in course 2 (the enrolment's), one in the system context, memberships of a
#: group of course 2 and of course 4 (not enrolled there) and of a cohort; then a
#: cohort deleted with a member
DELETIONS = [
    _with("user_enrolment_deleted", courseid=2, id=10, enrolid=20),
    _with("user_enrolment_deleted", courseid=2, id=11, enrolid=21),
    _with("user_enrolment_deleted", courseid=3, id=12, enrolid=30),
    _with("role_unassigned", courseid=2, id=40, contextid=50, roleid=5, component="", itemid=0),
    _with("role_unassigned", courseid=None, id=41, contextid=1, roleid=9, component="", itemid=0),
    _with("group_member_removed", courseid=2, id=60, groupid=70, component="", itemid=0),
    _with("group_member_removed", courseid=4, id=61, groupid=71, component="", itemid=0),
    _with("cohort_member_removed", courseid=None, id=80, cohortid=90),
    {"kind": "user_deleted", "id": 7, "user": {"username": "gone"}},
    _with("cohort_member_removed", "cohort_deleted", courseid=None, id=81, cohortid=91),
    {"kind": "cohort_deleted", "id": 91, "contextid": 1, "name": "C", "idnumber": "C"},
]
for _seq, _line in enumerate(DELETIONS, 1):
    _line["seq"] = _seq


def test_a_deletion_counts_the_events_moodles_deletion_triggers(tmp_path: Path) -> None:
    """What a deletion takes with it (its `with` lines): delete_user's unenrolments
    (user_enrolment_deleted each; the roles, any context; the memberships of groups in
    the courses it was enrolled in), none for a membership of another course's group or
    of a cohort; none for a deleted cohort's members."""
    path = part(tmp_path, "001_users.csv.journal", DELETIONS)
    counted = tally([(path, "x")], {})
    assert dict(counted.events) == {
        "user_enrolment_deleted": 3,
        "role_unassigned": 2,
        "group_member_removed": 1,
        "user_deleted": 1,
        "cohort_deleted": 1,
    }
    assert counted.silent == 3
    # a replay that went on after the user's deletion counts the cohort's alone
    later = tally([(path, "x")], {path.name: 9})
    assert (dict(later.events), later.silent, later.done) == ({"cohort_deleted": 1}, 1, 9)
    out = tmp_path / "feed"
    with open(out, "w") as feed:
        write_feed([(path, "x")], {}, feed)
    fed = [json.loads(t) for t in out.read_text().splitlines()]
    assert [line.get("with") for line in fed] == [line.get("with") for line in DELETIONS]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('{"seq":1,"kind":"role_assigned"}\n{"seq":2,"kind":"role_ass', "line 2: not JSON"),
        ('{"seq":1,"kind":"role_assigned"}\n[1]\n', "line 2: not a JSON object"),
        ('{"seq":1,"kind":"dropped_table"}\n', "line 1: unknown kind 'dropped_table'"),
        ('{"seq":2,"kind":"role_assigned"}\n', "line 1: its seq is 2, not 1"),
        (
            '{"seq":1,"kind":"role_unassigned","with":"role_assigned"}\n',
            "line 1: its with is 'role_assigned', not a deletion",
        ),
        ('{"seq":1,"kind":"role_assigned"}', "line 1: cut short"),
    ],
)
def test_a_damaged_part_names_its_file_and_line(tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "001_x.journal"
    path.write_text(text)
    with pytest.raises(StepError, match="nothing replayed") as caught:
        tally([(path, "runs/R/001_x.journal")], {})
    assert f"runs/R/001_x.journal, {said}" in str(caught.value)


def test_a_symlink_fifo_or_directory_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    target = part(tmp_path / "elsewhere")
    link = tmp_path / "001_a.journal"
    link.symlink_to(target)
    with pytest.raises(StepError, match="is a symbolic link: not followed"):
        tally([(link, link.name)], {})
    fifo = tmp_path / "002_b.journal"
    os.mkfifo(fifo)
    with pytest.raises(StepError, match="is a FIFO: not read"):  # and never hangs
        tally([(fifo, fifo.name)], {})
    directory = tmp_path / "003_c.journal"
    directory.mkdir()
    with pytest.raises(StepError, match="is a directory"):
        tally([(directory, directory.name)], {})


def test_the_progress_file_round_trips_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    assert read_progress(tmp_path) == {}
    write_progress(tmp_path, {"002_b.journal": 4, "001_a.journal": 9})
    assert read_progress(tmp_path) == {"001_a.journal": 9, "002_b.journal": 4}
    (tmp_path / "events.progress").write_text("[1, 2]")
    with pytest.raises(StepError, match="not the replay's progress"):
        read_progress(tmp_path)
    assert journal_parts(tmp_path / "none") == []


def test_the_scripts_progress_is_the_last_it_printed_per_part() -> None:
    said = "progress 001_a.journal 500\nnote x\nprogress 001_a.journal 1000\nprogress 002_b 7\n"
    assert said_progress(said + "progress 3 x\n") == {"001_a.journal": 1000, "002_b": 7}


# --- through the CLI: a stand-in interpreter in place of PHP ----------------------------
#
# postsync hands the shipped script to the `php` command; the stand-in below, given as
# `php`, reads the feed as the script would, records how it was called (argv, its
# environment, the feed), prints `progress PART SEQ` after each batch and the summary,
# and stalls after its first batch when its directory's `mode` file says `stall`.

STAND_IN = """#!/usr/bin/python3
import json, os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
args = dict(a[2:].split("=", 1) for a in sys.argv[2:] if a.startswith("--"))
with open(args["feed"]) as feed:
    lines = [json.loads(text) for text in feed]
with open(os.path.join(here, "calls.jsonl"), "a") as out:
    call = {"argv": sys.argv[1:], "env": dict(os.environ), "feed": lines, "pid": os.getpid()}
    out.write(json.dumps(call) + "\\n")
with open(os.path.join(here, "mode")) as mode:
    stall = mode.read().strip() == "stall"
size, events = int(args["batch"]), {}
for start in range(0, len(lines), size):
    if stall and start:
        time.sleep(120)
    batch = lines[start : start + size]
    for line in batch:
        if line["kind"] != "course_left":
            events[line["kind"]] = events.get(line["kind"], 0) + 1
    last = {line["part"]: line["seq"] for line in batch}
    for part, seq in last.items():
        print("progress", part, seq, flush=True)
print("summary " + json.dumps({"events": events, "gone": {}, "skipped": {}}), flush=True)
"""
ENROLS = "cmd;cid;uid;rolename;enrol;starttime;endtime;gcmd;g1;g2\n" + "".join(
    f"add;MATH101;U000{i};student;;;;;;\n" for i in (1, 2, 3)
)


def stand_in(root: Path, mode: str = "ok") -> tuple[Path, Path]:
    """A stand-in site (config.php, admin/cli) and `php`: (moodle_dir, php)."""
    dirroot = moodle_site(root)
    php = dirroot / "php"
    php.write_text(STAND_IN)
    php.chmod(0o755)
    (dirroot / "mode").write_text(mode)
    return dirroot, php


def stand_in_calls(dirroot: Path) -> list[dict[str, Any]]:
    log = dirroot / "calls.jsonl"
    return [json.loads(t) for t in log.read_text().splitlines()] if log.exists() else []


def events_book(
    site: Site, dirroot: Path, php: Path | str, extra: str = "", name: str = "playbook.yml"
) -> Path:
    """A playbook holding the enrolments step (playbook.yml) or none (another name:
    for `post RECORD`), then moodle_events."""
    sync = f"sync:\n{ENROLMENTS_STEP}" if name == "playbook.yml" else ""
    book = site.root / name
    book.write_text(
        f'name: Sync test\narea: area\ndatabase: "{site.url}"\n{sync}'
        "post_treatments:\n  - moodle_events:\n"
        f'      moodle_dir: "{dirroot}"\n      php: ["{php}"]\n      run_as: {SCRIPT_USER}\n'
        + extra
    )
    return book


def record_of(site: Site) -> Path:
    (record,) = (site.area / ".postsync" / "runs").glob("*.json")
    return record


def events_lines(out: str) -> list[str]:
    """The step's listing: its `trigger \\core\\event\\NAME  (N events)` lines."""
    return [" ".join(t.split()) for t in out.splitlines() if "\\core\\event\\" in t]


#: a stand-in site's directory (as root, one the script's user can reach)
shared = caches.shared
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@SQLITE
def test_the_preview_lists_what_the_run_triggers(site: Site, shared: Path) -> None:
    dirroot, php = stand_in(shared)
    site.write("enrols.csv", ENROLS)
    events_book(site, dirroot, php)
    preview = site.run("--check")
    assert preview.code == 0, preview.out + preview.err
    assert stand_in_calls(dirroot) == []  # the preview runs nothing
    done = site.run()
    assert done.code == 0, done.out + done.err
    assert (
        events_lines(done.out)
        == events_lines(preview.out)
        == [
            "trigger \\core\\event\\role_assigned (3 events)",
            "trigger \\core\\event\\user_enrolment_created (3 events)",
        ]
    )
    (call,) = stand_in_calls(dirroot)
    assert Counter(line["kind"] for line in call["feed"]) == {
        "role_assigned": 3,
        "user_enrolment_created": 3,
    }
    assert "--batch=500" in call["argv"]
    again = site.run()  # the same file: nothing changed, nothing to replay
    assert again.code == 0, again.out
    assert "the run's journal holds no change to replay" in again.out
    assert len(stand_in_calls(dirroot)) == 1


@SQLITE
@pytest.mark.parametrize("wrong", ["php", "moodle_dir"])
def test_no_php_or_no_site_stops_the_run_before_the_sync(
    site: Site, shared: Path, wrong: str
) -> None:
    """As purge_moodle_caches: `validate` warns (the playbook is right; CI checks it on
    another machine), the preview, the run and `post RECORD` exit 4 naming the
    parameter before any step: the sync writes nothing, nothing is replayed."""
    dirroot, php = stand_in(shared)
    message = {
        "php": "moodle_events.php: /nonexistent is not an executable found on PATH",
        "moodle_dir": f"moodle_events.moodle_dir: {dirroot}/gone is not a directory",
    }[wrong]
    given = (dirroot / "gone", php) if wrong == "moodle_dir" else (dirroot, "/nonexistent")
    site.write("enrols.csv", ENROLS)
    book = events_book(site, *given)
    validated = site.cli("validate", book)
    assert validated.code == 0, validated.out + validated.err
    assert "(on this machine: a run here would stop before any step)" in validated.err
    assert message in " ".join(validated.err.split())
    for result in (site.run("--check"), site.run()):
        assert result.code == 4, result.out + result.err
        assert message in " ".join(result.err.split()), result.err
    assert not site.enrolled("MATH101", "U0001")  # the sync step wrote nothing
    assert site.run(steps=ENROLMENTS_STEP).code == 0  # a run without the step
    posted = site.cli(
        "post", record_of(site), "--playbook", events_book(site, *given, name="p.yml")
    )
    assert posted.code == 4, posted.out + posted.err
    assert message in " ".join(posted.err.split())
    assert stand_in_calls(dirroot) == []
    assert not list(site.area.rglob("events.progress"))


@SQLITE
@pytest.mark.parametrize("damage", ["line", "symlink", "fifo", "directory"])
def test_a_damaged_part_replays_nothing(site: Site, shared: Path, damage: str) -> None:
    """`post RECORD` (and its preview) of a run whose part is damaged, or is a symlink,
    a FIFO or a directory: the step fails naming the part (and the line), exit 3,
    the script never started, no progress written."""
    dirroot, php = stand_in(shared)
    site.write("enrols.csv", ENROLS)
    assert site.run(steps=ENROLMENTS_STEP).code == 0
    record = record_of(site)
    (part,) = (record.parent / record.stem).glob("*.journal")
    lines = part.read_text().splitlines(keepends=True)
    elsewhere = shared / "elsewhere.journal"
    elsewhere.write_text("".join(lines))
    part.unlink()
    said = {
        "line": f"{record.stem}/{part.name}, line 4: not JSON",
        "symlink": f"{record.stem}/{part.name} is a symbolic link: not followed",
        "fifo": f"{record.stem}/{part.name} is a FIFO: not read",
        "directory": f"{record.stem}/{part.name} is a directory: not read",
    }[damage]
    if damage == "line":
        lines[3] = lines[3][:20] + "\n"
        part.write_text("".join(lines))
    elif damage == "symlink":
        part.symlink_to(elsewhere)
    elif damage == "fifo":
        os.mkfifo(part)
    else:
        part.mkdir()
    book = events_book(site, dirroot, php, name="p.yml")
    for args in (("--check",), ()):
        posted = site.cli("post", record, "--playbook", book, *args)
        assert posted.code == 3, posted.out + posted.err
        assert said in posted.out, posted.out
        assert "nothing replayed" in posted.out
    assert stand_in_calls(dirroot) == []
    assert not (record.parent / record.stem / "events.progress").exists()


@SQLITE
def test_a_replay_timed_out_keeps_its_progress_and_post_goes_on(site: Site, shared: Path) -> None:
    """One line a batch; the script stalls after its first: stopped at the timeout
    (exit 3, the sync's changes kept), its progress kept (RUN_ID/events.progress);
    `post RECORD` hands the script only the lines after it and completes."""
    dirroot, php = stand_in(shared, mode="stall")
    site.write("enrols.csv", ENROLS)
    book = events_book(site, dirroot, php, "      batch_size: 1\n      timeout_seconds: 2\n")
    done = site.run()
    assert done.code == 3, done.out + done.err
    assert "took more than 2 s and was stopped (progress kept: 1 line replayed" in done.out
    assert site.enrolled("MATH101", "U0001")  # the sync's work stays
    (first,) = stand_in_calls(dirroot)
    assert gone(first["pid"])
    record = record_of(site)
    progress = record.parent / record.stem / "events.progress"
    assert json.loads(progress.read_text()) == {"parts": {"001_enrols.csv.journal": 1}}
    (dirroot / "mode").write_text("ok")
    preview = site.cli("post", record, "--playbook", book, "--check")
    assert "5 events from 1 journal part, 1 line replayed before" in preview.out, preview.out
    posted = site.cli("post", record, "--playbook", book)
    assert posted.code == 0, posted.out + posted.err
    second = stand_in_calls(dirroot)[1]
    assert [line["seq"] for line in second["feed"]] == [2, 3, 4, 5, 6]
    assert json.loads(progress.read_text()) == {"parts": {"001_enrols.csv.journal": 6}}
    again = site.cli("post", record, "--playbook", book)
    assert "the run's journal is replayed already, 6 lines replayed before" in again.out
    assert len(stand_in_calls(dirroot)) == 2


def test_the_database_password_never_reaches_the_script(
    postgresql_server: PostgresServer, shared: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database's password (in the playbook's URL, and in postsync's environment
    as a deployment may give it) is not on the script's command line, not in its
    environment, not in its feed, nor printed or kept in the run's record."""
    secret = postgresql_server.password
    postgresql_server.create_database("events_secret")
    url = postgresql_server.url("events_secret", password=True)
    assert secret in url
    monkeypatch.setenv("PGPASSWORD", secret)
    assert cli("db", "init", url, "--demo").code == 0
    (shared / "area").mkdir()
    site = Site(shared, url, cli, moodle_tables())
    dirroot, php = stand_in(shared)
    site.write("enrols.csv", ENROLS)
    events_book(site, dirroot, php)
    done = site.run()
    assert done.code == 0, done.out + done.err
    assert secret not in done.out + done.err
    (call,) = stand_in_calls(dirroot)
    assert len(call["feed"]) == 6
    seen = json.dumps(call)
    assert secret not in seen
    assert "PGPASSWORD" not in call["env"]
    assert set(call["env"]) <= {"PATH", "LANG", "LC_ALL", "TZ", "HOME"}
    for path in (site.area / ".postsync").rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path
