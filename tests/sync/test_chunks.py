"""`commit_every`: a control file committed in chunks, through the CLI, on SQLite,
PostgreSQL and MariaDB. It ends where one transaction ends (site, report, record,
retry lines); a file rejected for what only its end shows (an encoding, max_changes)
still applies nothing; a run killed after a chunk is resumed after it, lines never
applied twice; another writer waits for a chunk, not for the file; a file changed
between two chunks stops the run, its committed lines said."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from tests.conftest import paused, postsync_process
from tests.reliability import feeds
from tests.sync.conftest import Site, another_site

HEADER = "cmd;cid;uid;rolename;gcmd;g1\n"


def _roster() -> str:
    """Lines that are not idempotent one by one (an enrolment removed then made again
    with another role, a group made then filled), and failing ones."""
    lines = []
    for i in range(1, 31):
        lines.append(f"add;MATH101;U{i:04d};student;gaddcreate;Chunk{i % 4}")
    lines += [
        "del;MATH101;U0003;student;;",
        "add;MATH101;U0003;teacher;;",
        "add;MATH101;U9999;student;;",  # no such user
        "add;NOCOURSE;U0004;student;;",  # no such course
        "del;MATH101;U0005;student;;",
        "add;MATH101;U0005;student;gaddcreate;Late",
    ]
    lines += [f"add;PHYS101;U{i:04d};student;;" for i in range(40, 52)]
    return HEADER + "\n".join(lines) + "\n"


def step(every: str = "", extra: str = "") -> str:
    chunks = f"    commit_every: {every}\n" if every else ""
    return f"  - command: enrolments\n    file: enrols*.csv\n{chunks}{extra}"


def record(site: Site) -> dict[str, Any]:
    """The newest run record."""
    runs = sorted((site.area / ".postsync" / "runs").glob("*.json"))
    return dict(json.loads(runs[-1].read_text()))


def report(site: Site) -> str:
    entry = record(site)["control_files"][0]
    return (site.area / ".postsync" / "runs" / entry["report"]).read_text()


def outcome(site: Site) -> dict[str, Any]:
    entry = record(site)["control_files"][0]
    keep = ("lines", "failed_lines", "processed_courses", "error")
    return {k: entry[k] for k in keep}


def markers(site: Site) -> list[tuple[Any, ...]]:
    return site.query("SELECT path, runid FROM postsync_applied")


@pytest.fixture
def twin(site: Site, request: pytest.FixtureRequest) -> Site:
    """The same demo site again: the file applied there in one transaction."""
    return another_site(site, request, "twin")


def roster_on_both(site: Site, twin: Site, extra: str = "", every: int = 4) -> Path:
    """The roster applied on the twin in one transaction, and written on the site for
    a step committing every `every` lines (0: in one transaction; with `extra` options):
    the site's playbook."""
    twin.write("enrols.csv", _roster())
    assert twin.run("-v", steps=step()).code == 2
    site.write("enrols.csv", _roster())
    return site.playbook(step(f"{{lines: {every}}}" if every else "", extra))


def test_a_file_in_chunks_ends_where_one_transaction_ends(site: Site, twin: Site) -> None:
    for where, every in ((twin, ""), (site, "{lines: 4}")):
        where.write("enrols.csv", _roster())
        result = where.run("-v", steps=step(every))
        assert result.code == 2, result.out + result.err  # failed lines: exit 2
        assert "sync enrols.csv  (48 lines: 46 changed, 0 unchanged, 2 failed" in result.out
    assert feeds.site(site.url) == feeds.site(twin.url)
    assert outcome(site) == outcome(twin)
    assert report(site) == report(twin)
    assert markers(site) == []  # the run ended: its marker is gone
    # the same file again (it undoes and redoes a few of its lines): the same again
    again = site.run("-v", steps=step("{lines: 4}"))
    assert again.out.split("RECORD")[0] == twin.run("-v", steps=step()).out.split("RECORD")[0]
    assert feeds.site(site.url) == feeds.site(twin.url)


def test_the_preview_of_a_file_in_chunks_is_the_run(site: Site) -> None:
    site.write("enrols.csv", _roster())
    preview = site.run("--check", "-v", steps=step("{lines: 4}"))
    run = site.run("-v", steps=step("{lines: 4}"))

    def items(out: str) -> list[str]:
        return [line for line in out.splitlines() if line.startswith("    ")]

    assert items(preview.out) == items(run.out), preview.out + run.out


def test_a_file_rejected_by_its_last_line_applies_nothing_in_chunks(site: Site) -> None:
    """Declared ISO-8859-1, its last line is UTF-8: only the end of the file tells."""
    before = site.dump()
    body = "".join(f"add;MATH101;U{i:04d};student;;\n" for i in range(1, 40))
    site.write("enrols.csv", (HEADER + body + "add;MATH101;U0050;étudiant;;\n").encode())
    result = site.run(steps=step("{lines: 2}", "    encoding: iso-8859-1\n"))
    assert result.code == 3, result.out + result.err
    assert "declare `encoding: utf-8`" in result.out, result.out
    assert "nothing of it applied" in result.out, result.out
    assert site.dump() == before
    assert markers(site) == []


def test_a_file_over_max_changes_applies_nothing_in_chunks(site: Site) -> None:
    """Its unenrolments come last, after chunks of enrolments."""
    site.write("enrols.csv", HEADER + "".join(
        f"add;MATH101;U{i:04d};student;;\n" for i in range(1, 21)))  # fmt: skip
    assert site.run(steps=step()).code == 0
    before = site.dump()
    lines = [f"add;PHYS101;U{i:04d};student;;" for i in range(1, 21)]
    lines += [f"del;MATH101;U{i:04d};student;;" for i in range(1, 6)]
    site.write("enrols.csv", HEADER + "\n".join(lines) + "\n")
    result = site.run(steps=step("{lines: 3}", "    max_changes: {unenrol: 4}\n"))
    assert result.code == 3, result.out + result.err
    assert "it unenrols 5 users" in result.out, result.out
    assert site.dump() == before  # not one chunk committed
    assert markers(site) == []


def test_a_run_killed_after_a_chunk_resumes_after_it(site: Site, twin: Site) -> None:
    playbook = roster_on_both(site, twin)
    for kill in ("sync.chunked", "sync.chunk"):  # after a commit, and just before one
        env = {"POSTSYNC_FAULTS": f"kill={kill}"}
        killed = postsync_process("run", playbook, "-v", env=env)
        assert killed.returncode == -9, killed.stdout + killed.stderr
    # the first kill committed lines 1-4; the second run resumed and committed 5-8
    (marker,) = markers(site)
    preview = site.run("--check", "-v")
    assert "(48 lines: 46 changed, 0 unchanged, 2 failed" in preview.out, preview.out
    assert markers(site) == [marker]  # a preview changes nothing
    again = site.run("-v")
    assert again.code == 2, again.out + again.err
    assert "(48 lines: 46 changed, 0 unchanged, 2 failed" in again.out, again.out
    assert feeds.site(site.url) == feeds.site(twin.url)
    assert outcome(site) == outcome(twin)
    assert report(site) == report(twin)
    assert markers(site) == []


def test_a_run_failing_after_a_chunk_tells_what_is_committed_and_the_next_resumes(
    site: Site, twin: Site
) -> None:
    playbook = roster_on_both(site, twin)
    failed = postsync_process("run", playbook, env={"POSTSYNC_FAULTS": "enospc=sync.chunked"})
    assert failed.returncode == 3, failed.stdout + failed.stderr
    assert "its lines up to line 5 are committed; the next run applies the rest" in failed.stdout
    assert len(markers(site)) == 1
    again = site.run("-v")
    assert again.code == 2, again.out + again.err
    assert feeds.site(site.url) == feeds.site(twin.url)
    assert outcome(site) == outcome(twin)
    assert report(site) == report(twin)


# every 5 lines: the file's last commit has lines of its own (47-49) after the last chunk
@pytest.mark.parametrize(
    ("point", "last", "every"),
    [("sync.chunk.committed", 6, 5), ("sync.committed", 49, 5), ("sync.committed", 49, 0)],
)
def test_a_run_stopped_just_after_a_commit_keeps_it(
    site: Site, twin: Site, point: str, last: int, every: int
) -> None:
    """SIGTERM between a commit (a chunk's, the file's last; in chunks or in one
    transaction) and the note of it: the run stops there (143), its report and journal
    part ending with what it committed, which the next run resumes after; the site,
    outcome and report end as an uninterrupted run's."""
    playbook = roster_on_both(site, twin, every=every)
    stopped = postsync_process("run", playbook, "-v", env={"POSTSYNC_FAULTS": f"term={point}"})
    assert stopped.returncode == 143, stopped.stdout + stopped.stderr
    assert len(markers(site)) == 1
    (part,) = (site.area / ".postsync" / "runs").glob("*/*.journal")
    lines = [json.loads(line) for line in part.read_text().splitlines()]
    assert lines and max(line["line"] for line in lines) == last  # the file's line numbers
    again = site.run("-v")
    assert again.code == 2, again.out + again.err
    assert record(site)["control_files"][0]["journal_error"] is None
    assert feeds.site(site.url) == feeds.site(twin.url)
    assert outcome(site) == outcome(twin)
    assert report(site) == report(twin)
    assert markers(site) == []


def _moodle_writes(site: Site) -> None:
    """Moodle changes U0001's enrolment in MATH101 (enrol_user on an existing one),
    waiting at most 2 seconds for a lock."""
    engine = create_engine(site.url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL lock_timeout = '2s'"))
            else:
                conn.execute(text("SET SESSION innodb_lock_wait_timeout = 2"))
            conn.execute(
                text(
                    "UPDATE mdl_user_enrolments SET timemodified = timemodified + 1"
                    " WHERE userid = (SELECT id FROM mdl_user WHERE idnumber = 'U0001')"
                )
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)
def test_another_writer_waits_for_a_chunk_not_for_the_file(site: Site) -> None:
    """The file's first line unenrols U0001, whom Moodle then enrols again."""
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;\n")
    assert site.run(steps=step()).code == 0
    unenrol = HEADER + "del;MATH101;U0001;student;;\n" + _roster().split("\n", 1)[1]
    site.write("enrols.csv", unenrol)
    playbook = site.playbook(step())
    # one transaction: every line written, not committed
    run, go = paused("run", playbook, point="sync.commit", where=site.root)
    try:
        with pytest.raises(OperationalError):  # held until the file's commit
            _moodle_writes(site)
    finally:
        go.touch()
        out, err = run.communicate(timeout=120)
    assert run.returncode == 2, out + err
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;\n")
    assert site.run(steps=step()).code == 0
    site.write("enrols.csv", unenrol)
    site.playbook(step("{lines: 4}"))
    # lines 2-5 committed, the rest to come
    run, go = paused("run", playbook, point="sync.chunked", where=site.root)
    try:
        _moodle_writes(site)  # no wait
    finally:
        go.touch()
        out, err = run.communicate(timeout=120)
    assert run.returncode == 2, out + err


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_file_changed_between_chunks_stops_the_run(site: Site) -> None:
    path = site.write("enrols.csv", _roster())
    playbook = site.playbook(step("{lines: 4}"))
    run, go = paused("run", playbook, point="sync.chunked", where=site.root)
    try:
        with path.open("a") as out:
            out.write("add;MATH101;U0099;student;;\n")
    finally:
        go.touch()
        out_text, err = run.communicate(timeout=120)
    assert run.returncode == 3, out_text + err
    assert "while it was applied in chunks: its lines up to line 5 are committed" in out_text
    assert path.exists()  # not post-treated
    # the next run applies the file as it is now, whole
    again = site.run("-v")
    assert "sync enrols.csv  (49 lines:" in again.out, again.out
    assert markers(site) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_commit_every_is_not_for_a_snapshot(site: Site) -> None:
    site.write("enrols.csv", HEADER)
    snapshot = step("{seconds: 2}", "    mode: snapshot\n    missing: unenrol\n")
    result = site.run(steps=snapshot)
    assert result.code != 0
    assert "commit_every is not for mode: snapshot" in result.out + result.err
    refused = site.run(steps=step("{lines: 0}"))
    assert refused.code != 0 and "commit_every" in refused.out + refused.err


def run_files(site: Site) -> list[str]:
    """The files of the runs' directories (reports, journal parts)."""
    runs = site.area / ".postsync" / "runs"
    return sorted(p.name for p in runs.glob("*/*"))


def test_a_failure_before_the_first_chunk_commits_leaves_nothing(site: Site, twin: Site) -> None:
    """The report and journal part are under their names just before a chunk commits:
    its commit failing, they go (nothing of the file is committed)."""
    playbook = roster_on_both(site, twin)
    failed = postsync_process("run", playbook, env={"POSTSYNC_FAULTS": "enospc=sync.chunk"})
    assert failed.returncode == 3, failed.stdout + failed.stderr
    assert "(nothing of enrols.csv was applied)" in failed.stdout, failed.stdout
    assert run_files(site) == [] and markers(site) == []
    again = site.run("-v")
    assert again.code == 2, again.out + again.err
    assert feeds.site(site.url) == feeds.site(twin.url)
    assert report(site) == report(twin)


def test_a_failed_last_commit_leaves_the_chunks_report_and_journal(site: Site, twin: Site) -> None:
    """The file's last transaction fails after its report and journal part were
    published: both end with the last chunk committed, which the next run resumes."""
    playbook = roster_on_both(site, twin)
    failed = postsync_process("run", playbook, env={"POSTSYNC_FAULTS": "enospc=sync.commit"})
    assert failed.returncode == 3, failed.stdout + failed.stderr
    assert "its lines up to line 49 are committed" in failed.stdout, failed.stdout
    (journal,) = (site.area / ".postsync" / "runs").glob("*/*.journal")
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert max(line["line"] for line in lines) <= 49
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    again = site.run("-v")
    assert again.code == 2, again.out + again.err
    assert feeds.site(site.url) == feeds.site(twin.url)
    assert outcome(site) == outcome(twin)
    assert report(site) == report(twin)
    assert markers(site) == []


def test_a_step_failing_after_a_chunk_with_ignore_errors_is_resumed(site: Site, twin: Site) -> None:
    """The run goes on and ends: the file's marker stays, and the next run applies the
    rest, never its committed lines again."""
    playbook = roster_on_both(site, twin, "    ignore_errors: true\n")
    failed = postsync_process("run", playbook, env={"POSTSYNC_FAULTS": "enospc=sync.chunked"})
    assert "its lines up to line 5 are committed" in failed.stdout, failed.stdout
    assert "FAILED   enrolments" in failed.stdout and "(ignored)" in failed.stdout, failed.stdout
    assert len(markers(site)) == 1  # kept when the run ended: the file is committed in part
    again = site.run("-v")
    assert again.code == 2, again.out + again.err
    assert "(48 lines: 46 changed, 0 unchanged, 2 failed" in again.out, again.out
    assert feeds.site(site.url) == feeds.site(twin.url)
    assert outcome(site) == outcome(twin)
    assert markers(site) == []
