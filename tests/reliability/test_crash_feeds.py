"""Kill a run of every sync command, with lines that are not idempotent one by one, at
every fault point; run it again; the site and the files end as an uninterrupted run's.

A file whose changes a killed run committed is known as applied (its marker is
committed in the same transaction) and is not applied a second time: without that,
the re-run would delete the re-created user U7001 again, with what was enrolled since,
and make a third account.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.reliability import feeds
from tests.reliability import workspace as ws

WORKERS = 2


class Databases:
    """Fresh databases for the trials: SQLite files, or PostgreSQL copies of a template."""

    def __init__(self, kind: str, request: pytest.FixtureRequest, root: Path) -> None:
        self.kind, self.root = kind, root
        self.server = request.getfixturevalue("postgresql_server") if kind == "pg" else None

    def template(self) -> str:
        if self.server is None:
            return f"sqlite:///{self.root / 'template' / 'moodle.db'}"
        return str(self.server.create_database("feeds_template"))

    def copy(self, name: str, workspace: Path) -> str:
        if self.server is None:
            return f"sqlite:///{workspace / 'moodle.db'}"
        import psycopg

        server = self.server
        with psycopg.connect(
            host="127.0.0.1", port=server.port, user=server.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE feeds_template')
        return str(server.url(name))


class _Hook(BaseHTTPRequestHandler):
    posts: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        self.posts.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def outside() -> Iterator[feeds.Outside]:
    """A stand-in Moodle directory (its purge_caches.php run by a real interpreter; as
    root, as nobody, in a directory nobody can reach) and a webhook on loopback."""
    as_root = os.geteuid() == 0
    where = Path(tempfile.mkdtemp(prefix="postsync-feeds-"))
    where.chmod(0o755)
    cli = where / "moodle" / "admin" / "cli"
    cli.mkdir(parents=True)
    (where / "moodle" / "config.php").write_text("<?php // stand-in\n")
    (cli / "purge_caches.php").write_text("import sys\nsys.exit(0)\n")
    for part in (where / "moodle", where / "moodle" / "admin", cli):
        part.chmod(0o755)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield feeds.Outside(
            where / "moodle",
            "/usr/bin/python3" if as_root else sys.executable,
            "nobody" if as_root else "",
            f"http://127.0.0.1:{server.server_address[1]}/hook",
        )
    finally:
        server.shutdown()
        shutil.rmtree(where, ignore_errors=True)


@pytest.fixture(scope="module", params=["sqlite", "pg", "sqlite-chunks", "pg-chunks"])
def reference(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    outside: feeds.Outside,
) -> dict[str, Any]:
    """An uninterrupted run; `-chunks`: each command feed committed line by line
    (commit_every: {lines: 1}), so that a kill falls between any two lines."""
    kind, _, chunked = request.param.partition("-")
    chunks = 1 if chunked else 0
    root = tmp_path_factory.mktemp(f"feeds-{request.param}")
    databases = Databases(kind, request, root)
    template = feeds.build_template(root, databases.template(), outside, chunks)
    done = feeds.copy(
        template,
        root / "reference",
        databases.copy("reference", root / "reference"),
        outside,
        chunks,
    )
    trace = root / "trace.txt"
    result = ws.run(done, faults=f"trace={trace}")
    assert result.returncode in (0, 2), result.stdout + result.stderr
    url = done.joinpath("playbook.yml").read_text().split('database: "')[1].split('"')[0]
    after = feeds.site(url)
    # the non-idempotent lines did what they say, once
    assert ("U7001", "phoenix", "phoenix.again@example.org", "0", "manual") in after["users"]
    assert after["deleted users"] == [("4",)]  # the demo's, phoenix once, mayfly, u0250
    assert ("BIOL101", "Renamed", "BIOL101-GX") in after["groups"]
    assert "CHANGED  purge_moodle_caches" in result.stdout, result.stdout
    assert "FAILED" not in result.stdout, result.stdout
    assert json.loads(_Hook.posts[-1])["run_id"]  # notify sent the run's summary
    return {
        "outside": outside,
        "chunks": chunks,
        "root": root,
        "template": template,
        "databases": databases,
        "points": [line.split()[1] for line in trace.read_text().splitlines()],
        "site": after,
        "files": ws.files(done / "area", skip=(".postsync", "reports")),
        "reports": sorted(ws.files(done / "area" / "reports")),
    }


def trial(reference: dict[str, Any], kill_at: int) -> None:
    root: Path = reference["root"]
    target = root / f"kill{kill_at}"
    url = reference["databases"].copy(f"kill{kill_at}", target)
    space = feeds.copy(
        reference["template"], target, url, reference["outside"], reference["chunks"]
    )
    killed = ws.run(space, faults=f"kill={kill_at}")
    assert killed.returncode == -signal.SIGKILL, (kill_at, killed.stdout, killed.stderr)
    present = ws.files(space / "area", skip=(".postsync",))
    for name, content in feeds.control_files().items():
        archived = present.get(f"archives/{ws.STAMP}_{name}")
        assert present.get(name) == content or archived == content, (kill_at, name)
    rerun = ws.run(space)
    assert rerun.returncode in (0, 2), (kill_at, rerun.stdout, rerun.stderr)
    assert "FAILED" not in rerun.stdout, (kill_at, rerun.stdout)
    assert feeds.site(url) == reference["site"], (kill_at, rerun.stdout)
    assert ws.files(space / "area", skip=(".postsync", "reports")) == reference["files"], kill_at
    reports = set(ws.files(space / "area" / "reports"))
    assert not set(reference["reports"]) - reports, kill_at


def test_kill_at_every_point_of_every_feed_converges(reference: dict[str, Any]) -> None:
    points: list[str] = reference["points"]
    assert len(points) >= 60, f"only {len(points)} kill points"
    assert {"sync.commit", "sync.committed", "record.saved", "delete.after", "sync.missing"} <= set(
        points
    )
    if reference["chunks"]:
        assert {"sync.chunk", "sync.chunked"} <= set(points)
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(lambda k: trial(reference, k), range(1, len(points) + 1)))


@pytest.fixture
def sqlite_feeds(tmp_path: Path, outside: feeds.Outside) -> tuple[Path, str]:
    url = f"sqlite:///{tmp_path / 'template' / 'moodle.db'}"
    template = feeds.build_template(tmp_path, url, outside)
    return template, url


def markers(url: str) -> list[tuple[Any, ...]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT path, runid FROM postsync_applied")))
    finally:
        engine.dispose()


def test_post_refuses_the_record_of_a_run_killed_during_its_sync(
    sqlite_feeds: tuple[Path, str],
) -> None:
    """Its post-treatments would act on a half-done sync: clean_empty_groups would
    delete groups that the group-members file not yet applied fills."""
    space, url = sqlite_feeds
    killed = ws.run(space, faults="kill=record.saved")  # after the users step
    assert killed.returncode == -signal.SIGKILL
    (record,) = (space / "area" / ".postsync" / "runs").glob("*.json")
    post = ws.postsync(space, "post", str(record))
    assert post.returncode == 4, post.stdout + post.stderr
    assert "did not finish its sync steps" in post.stdout + post.stderr
    assert "Run the playbook again" in post.stdout + post.stderr
    # nothing was done: the users file is still there and marked as applied
    assert (space / "area" / "users_1.csv").exists()
    assert [Path(p.strip('"')).name for p, _ in markers(url)] == ["users_1.csv"]
    rerun = ws.run(space)
    assert rerun.returncode == 2, rerun.stdout + rerun.stderr
    assert "sync users_1.csv  (applied by run " in rerun.stdout
    assert markers(url) == []  # the run ended: no marker left
    assert feeds.site(url)["deleted users"] == [("4",)]


def test_a_run_stopped_by_a_failed_step_leaves_its_files_known_as_applied(
    sqlite_feeds: tuple[Path, str],
) -> None:
    """A later sync step fails (min_files) and stops the run before any post-treatment:
    the users file stays in the area, and the next run post-treats it without deleting
    and re-creating U7001 a second time."""
    space, url = sqlite_feeds
    playbook = space / "playbook.yml"
    text = playbook.read_text()
    stop = "file: cohorts_*.csv\n    min_files: 2"
    playbook.write_text(text.replace("file: cohorts_*.csv", stop))
    stopped = ws.run(space)
    assert stopped.returncode == 3, stopped.stdout + stopped.stderr
    assert (space / "area" / "users_1.csv").exists()
    assert len(markers(url)) == 1
    playbook.write_text(text)
    before = feeds.site(url)
    preview = ws.postsync(space, "run", "playbook.yml", "--check", "-e", f"stamp={ws.STAMP}")
    assert preview.returncode == 2, preview.stdout + preview.stderr
    assert feeds.site(url) == before and len(markers(url)) == 1  # the preview changed nothing
    again = ws.run(space)
    assert again.returncode == 2, again.stdout + again.stderr
    assert "sync users_1.csv  (applied by run " in again.stdout

    # the preview said what the run did, line for line (the script's and the webhook's
    # items but for what only a run can tell: how long it took, what the server said)
    def items(out: str) -> list[str]:
        lines = [line for line in out.splitlines() if line.startswith("    ")]
        timed = ("    run ", "    post ")
        return [line.split("  (")[0] if line.startswith(timed) else line for line in lines]

    assert items(preview.stdout) == items(again.stdout)
    assert feeds.site(url)["deleted users"] == [("4",)]  # phoenix deleted once, not twice
    assert markers(url) == []
    assert not (space / "area" / "users_1.csv").exists()
    # a later file of the same name and bytes is a new drop: applied again
    (space / "area" / "users_1.csv").write_bytes(feeds.USERS.encode())
    third = ws.run(space)
    assert "sync users_1.csv  (8 lines" in third.stdout, third.stdout


def test_a_file_applied_before_the_first_record_keeps_its_line_report(
    sqlite_feeds: tuple[Path, str],
) -> None:
    """Killed right after the users file's commit, before any record: the next run's
    cleanup keeps that run's directory (its report is needed), and the report saved
    for the file holds each line's outcome, copied."""
    space, _url = sqlite_feeds
    killed = ws.run(space, faults="kill=sync.committed")
    assert killed.returncode == -signal.SIGKILL
    assert not list((space / "area" / ".postsync" / "runs").glob("*.json"))
    rerun = ws.run(space)
    assert rerun.returncode == 2, rerun.stdout + rerun.stderr
    assert "CLEANUP" not in rerun.stdout
    report = (space / "area" / "reports" / f"{ws.STAMP}_report_users_1.csv").read_text()
    assert "line 2: user phoenix: ok (created)" in report
    assert "line 3: user phoenix: ok (deleted)" in report
    assert "its report is gone" not in report
    # the run after that one removes the killed run's directory: nothing needs it now
    third = ws.run(space)
    assert "a killed run's reports, no record points to them" in third.stdout, third.stdout


def test_a_file_dropped_again_with_other_bytes_after_a_kill_is_applied(
    sqlite_feeds: tuple[Path, str],
) -> None:
    """The marker is of the bytes the killed run applied: the SIS dropping a new file
    under the same name is a new feed, applied as usual, and the old marker goes."""
    space, url = sqlite_feeds
    killed = ws.run(space, faults="kill=sync.committed")  # the users file committed
    assert killed.returncode == -signal.SIGKILL
    assert len(markers(url)) == 1
    newer = space / "area" / "users_1.csv"
    newer.write_text(
        "username;idnumber;firstname;lastname;email\nlate;U7010;Late;Comer;late@example.org\n"
    )
    rerun = ws.run(space)
    assert rerun.returncode == 2, rerun.stdout + rerun.stderr
    assert "sync users_1.csv  (1 line: 1 changed, 0 unchanged, 0 failed)" in rerun.stdout
    assert "applied by run" not in rerun.stdout
    assert markers(url) == []
    assert ("U7010", "late", "late@example.org", "0", "manual") in feeds.site(url)["users"]


def test_a_run_stopped_by_sigterm_leaves_its_files_known_as_applied(
    sqlite_feeds: tuple[Path, str], tmp_path: Path
) -> None:
    """`systemctl stop` between two sync steps: exit 143, the users file applied and
    still marked; the next run post-treats it without applying it again."""
    from tests.conftest import paused

    space, url = sqlite_feeds
    run, _never = paused(
        "run",
        "playbook.yml",
        "-e",
        f"stamp={ws.STAMP}",
        point="step.done",
        where=tmp_path,
        cwd=space,
    )
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 143, out + err
    assert len(markers(url)) == 1
    again = ws.run(space)
    assert again.returncode == 2, again.stdout + again.stderr
    assert "sync users_1.csv  (applied by run " in again.stdout
    assert feeds.site(url)["deleted users"] == [("4",)]
    assert markers(url) == []


def _retag(space: Path, old: str, new: str) -> str:
    playbook = space / "playbook.yml"
    text = playbook.read_text()
    assert old in text
    playbook.write_text(text.replace(old, new))
    return text


def test_a_run_of_some_steps_only_leaves_the_files_marked(
    sqlite_feeds: tuple[Path, str],
) -> None:
    """After a kill, `--tags` running the users step alone takes the users file from its
    marker and keeps the marker (its deletion did not run): the full run after it still
    does not apply the file again."""
    space, url = sqlite_feeds
    _retag(space, "file: users_*.csv\n", "file: users_*.csv\n    tags: [people]\n")
    killed = ws.run(space, faults="kill=sync.committed")
    assert killed.returncode == -signal.SIGKILL
    some = ws.postsync(space, "run", "playbook.yml", "--tags", "people", "-e", f"stamp={ws.STAMP}")
    assert "sync users_1.csv  (applied by run " in some.stdout, some.stdout
    assert len(markers(url)) == 1
    full = ws.run(space)
    assert full.returncode == 2, full.stdout + full.stderr
    assert "sync users_1.csv  (applied by run " in full.stdout
    assert feeds.site(url)["deleted users"] == [("4",)]
    assert markers(url) == []


def test_steps_whose_globs_overlap_each_apply_a_file_once(
    sqlite_feeds: tuple[Path, str], tmp_path: Path, outside: feeds.Outside
) -> None:
    """Two users steps list the same file: an uninterrupted run applies it twice (once
    per step); a run killed after the second step's commit, run again, ends the same."""
    space, url = sqlite_feeds
    twice = "  - command: users\n    file: users_*.csv\n  - command: users\n    file: users_?.csv\n"
    _retag(space, "  - command: users\n    file: users_*.csv\n", twice)
    reference = feeds.copy(space, tmp_path / "ref", f"sqlite:///{tmp_path / 'ref' / 'moodle.db'}",
                           outside)  # fmt: skip
    (reference / "playbook.yml").write_text((space / "playbook.yml").read_text().replace(
        url, f"sqlite:///{tmp_path / 'ref' / 'moodle.db'}"))  # fmt: skip
    done = ws.run(reference)
    assert done.returncode == 2, done.stdout + done.stderr
    want = feeds.site(f"sqlite:///{tmp_path / 'ref' / 'moodle.db'}")
    trace = tmp_path / "trace"
    ws.run(feeds.copy(space, tmp_path / "t", f"sqlite:///{tmp_path / 't' / 'moodle.db'}", outside),
           faults=f"trace={trace}")  # fmt: skip
    commits = [i for i, line in enumerate(trace.read_text().splitlines(), 1) if "committed" in line]
    assert len(commits) >= 2, commits
    killed = ws.run(space, faults=f"kill={commits[1]}")  # the second step's commit
    assert killed.returncode == -signal.SIGKILL
    again = ws.run(space)
    assert again.returncode == 2, again.stdout + again.stderr
    assert feeds.site(url) == want


def test_post_refuses_a_record_whose_last_sync_step_stopped_the_run(
    sqlite_feeds: tuple[Path, str],
) -> None:
    space, _url = sqlite_feeds
    _retag(space, "file: members_*.csv\n", "file: members_*.csv\n    min_files: 2\n")
    stopped = ws.run(space)
    assert stopped.returncode == 3, stopped.stdout + stopped.stderr
    (record,) = (space / "area" / ".postsync" / "runs").glob("*.json")
    post = ws.postsync(space, "post", str(record))
    assert post.returncode == 4, post.stdout + post.stderr
    assert "did not finish its sync steps" in post.stdout + post.stderr


def test_two_kills_in_a_row_keep_the_report_and_who_applied_the_file(
    sqlite_feeds: tuple[Path, str],
) -> None:
    space, _url = sqlite_feeds
    runs = space / "area" / ".postsync" / "runs"
    first = ws.run(space, faults="kill=sync.committed")  # run A: the users file committed
    assert first.returncode == -signal.SIGKILL
    (applier,) = [d.name for d in runs.iterdir() if d.is_dir()]
    second = ws.run(space, faults="kill=sync.committed")  # run B takes it, then dies
    assert second.returncode == -signal.SIGKILL
    third = ws.run(space)
    assert third.returncode == 2, third.stdout + third.stderr
    assert f"sync users_1.csv  (applied by run {applier}," in third.stdout, third.stdout
    report = (space / "area" / "reports" / f"{ws.STAMP}_report_users_1.csv").read_text()
    assert "line 2: user phoenix: ok (created)" in report
    assert "its report is gone" not in report
