"""The text output's verbosity (-q, -v) and its syslog priorities on systemd's journal
(JOURNAL_STREAM), through the real CLI."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import CLI, POSTSYNC, ROOT

PLAYBOOK = """name: Output
area: area
database: sqlite:///moodle.db
sync:
  - command: enrolments
    file: enrols.csv
post_treatments:
  - name: nothing to purge
    purge_old_files: {paths: [archives], older_than_days: 30}
"""


@pytest.fixture
def workspace(tmp_path: Path, cli: CLI) -> Path:
    assert cli("db", "init", f"sqlite:///{tmp_path / 'moodle.db'}", "--demo").code == 0
    (tmp_path / "area").mkdir()
    (tmp_path / "area" / "enrols.csv").write_text(
        "cmd;cid;uid;rolename\nadd;MATH101;U0001;student\nadd;MATH101;U9999;student\n"
    )
    (tmp_path / "playbook.yml").write_text(PLAYBOOK)
    return tmp_path


def test_quiet_shows_failures_and_the_recap_verbose_each_line(
    workspace: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace)
    verbose = cli("run", "playbook.yml", "--check", "-v")
    assert verbose.code == 2
    assert "        line 2: add student U0001 in MATH101: ok" in verbose.out
    assert (
        "        line 3: add student U9999 in MATH101: failed: no such user (idnumber U9999)"
    ) in verbose.out
    quiet = cli("run", "playbook.yml", "-q")
    assert quiet.code == 2
    assert quiet.out.splitlines()[0].startswith("RECAP ")  # nothing failed as a step
    assert "CHANGED" not in quiet.out and "line 3" not in quiet.out
    (workspace / "area" / "archives").write_text("a file, not a directory")
    failed = cli("run", "playbook.yml", "-q")
    assert failed.code == 3
    assert failed.out.splitlines()[0] == "FAILED   nothing to purge  (archives is not a directory)"
    assert failed.out.splitlines()[1].startswith("RECAP ")
    both = cli("run", "playbook.yml", "-q", "-v")
    assert both.code == 5 and "not allowed with argument" in both.err


def test_on_the_journal_each_line_carries_its_priority(workspace: Path) -> None:
    out = workspace / "journal.txt"
    with open(out, "w") as stream:
        st = os.fstat(stream.fileno())
        env = {
            **os.environ,
            "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}",
            "NO_COLOR": "1",
            "PYTHONPATH": str(ROOT),
        }
        done = subprocess.run(
            [*POSTSYNC, "run", "playbook.yml", "-v"],
            cwd=workspace,
            stdout=stream,
            stderr=subprocess.PIPE,
            env=env,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    lines = out.read_text().splitlines()
    assert all(line[:3] in ("<3>", "<4>", "<6>") for line in lines), lines
    assert "<6>CHANGED  enrolments  (1 file, 2 lines)" in lines
    assert (
        "<4>        line 3: add student U9999 in MATH101: failed: no such user (idnumber"
        " U9999)" in lines
    )
    assert any(line.startswith("<4>RECAP ") for line in lines)
    # another stream (a pipe, a file the journal did not open): no prefixes
    plain = subprocess.run(
        [*POSTSYNC, "run", "playbook.yml"],
        cwd=workspace,
        capture_output=True,
        text=True,
        env={**env, "JOURNAL_STREAM": "1:2"},
        check=False,
    )
    assert plain.stdout and "<6>" not in plain.stdout


def test_the_metrics_file_is_what_prometheus_reads(
    workspace: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    monkeypatch.chdir(workspace)
    metrics = workspace / "textfile" / "postsync.prom"
    metrics.parent.mkdir()
    metrics.write_text(  # another playbook's series: kept
        '# TYPE postsync_last_exit_code gauge\npostsync_last_exit_code{playbook="Other"} 0\n'
    )

    def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        families = text_string_to_metric_families(metrics.read_text())
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples
        }

    assert cli("run", "playbook.yml", "--check", "--metrics-file", metrics).code == 2
    assert len(samples()) == 1  # a preview writes none
    assert cli("run", "playbook.yml", "--metrics-file", metrics).code == 2
    got = samples()
    me = (("playbook", "Output"),)
    assert got[("postsync_last_exit_code", me)] == 2
    assert got[("postsync_lines", (("outcome", "ok"), *me))] == 1
    assert got[("postsync_lines", (("outcome", "failed"), *me))] == 1
    assert got[("postsync_steps", (("playbook", "Output"), ("status", "changed")))] == 1
    success = got[("postsync_last_success_timestamp_seconds", me)]
    assert abs(success - time.time()) < 60
    assert got[("postsync_last_exit_code", (("playbook", "Other"),))] == 0
    # a failed run: its exit code, and the last success stays
    (workspace / "area" / "archives").write_text("a file, not a directory")
    assert cli("run", "playbook.yml", "--metrics-file", metrics).code == 3
    got = samples()
    assert got[("postsync_last_exit_code", me)] == 3
    assert got[("postsync_last_success_timestamp_seconds", me)] == success
    assert got[("postsync_last_run_timestamp_seconds", me)] >= success
    # a run that does not start (invalid playbook) is counted too
    (workspace / "playbook.yml").write_text(PLAYBOOK.replace("days: 30", "days: zero"))
    assert cli("run", "playbook.yml", "--metrics-file", metrics).code == 4
    assert samples()[("postsync_last_exit_code", me)] == 4
    assert not list(metrics.parent.glob(".*"))  # replaced atomically: no temporary left


TWO_FILES = """name: Output
area: area
database: sqlite:///moodle.db
sync:
  - command: enrolments
    file: enrols*.csv
"""
HEADER = "cmd;cid;uid;rolename\n"


@pytest.fixture
def two_files(workspace: Path) -> Path:
    """Two enrolment files of one step, each with failed lines."""
    area = workspace / "area"
    (area / "enrols.csv").unlink()
    (area / "enrols_a.csv").write_text(
        HEADER + "add;MATH101;U0001;student\nadd;MATH101;U9999;student\nadd;NOPE;U0001;student\n"
    )
    (area / "enrols_b.csv").write_text(
        HEADER + "add;MATH101;U9998;student\nadd;MATH101;U0002;student\n"
    )
    (workspace / "playbook.yml").write_text(TWO_FILES)
    return workspace


def blocks(out: str) -> list[str]:
    """Each `sync FILE` line with the lines printed under it."""
    found: list[str] = []
    inside = False
    for line in out.splitlines():
        if line.startswith("    sync "):
            inside = True
        elif not line.startswith(" " * 8):
            inside = False
        if inside:
            found.append(line)
    return found


FAILED_VIEW = [
    "    sync enrols_a.csv  (3 lines: 1 changed, 0 unchanged, 2 failed)",
    "        line 3: failed: no such user (idnumber U9999)",
    "            add;MATH101;U9999;student",
    "        line 4: failed: no such course (idnumber NOPE)",
    "            add;NOPE;U0001;student",
    "    sync enrols_b.csv  (2 lines: 1 changed, 0 unchanged, 1 failed)",
    "        line 2: failed: no such user (idnumber U9998)",
    "            add;MATH101;U9998;student",
]


def test_each_files_lines_are_under_its_own_sync_line(
    two_files: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(two_files)
    verbose = cli("run", "playbook.yml", "--check", "-v")
    assert verbose.code == 2, verbose.err
    assert blocks(verbose.out) == [
        "    sync enrols_a.csv  (3 lines: 1 changed, 0 unchanged, 2 failed)",
        "        line 2: add student U0001 in MATH101: ok",
        "        line 3: add student U9999 in MATH101: failed: no such user (idnumber U9999)",
        "        line 4: add student U0001 in NOPE: failed: no such course (idnumber NOPE)",
        "    sync enrols_b.csv  (2 lines: 1 changed, 0 unchanged, 1 failed)",
        "        line 2: add student U9998 in MATH101: failed: no such user (idnumber U9998)",
        "        line 3: add student U0002 in MATH101: ok",
    ]
    preview = cli("run", "playbook.yml", "--check", "--failed")
    real = cli("run", "playbook.yml", "--failed")
    assert preview.code == real.code == 2, real.err
    assert blocks(real.out) == FAILED_VIEW
    # the preview prints what the run prints, but for its banner and recap
    lines = preview.out.splitlines()
    assert lines[0].startswith("PREVIEW ")
    assert lines[-1].endswith("  (preview: nothing changed)")
    lines[-1] = lines[-1].removesuffix("  (preview: nothing changed)")
    assert lines[1:] == real.out.splitlines()[:-1]  # the run's last line: its RECORD
    assert real.out.splitlines()[-1].startswith("RECORD ")
    # the record shows the same, and without --failed only the files' lines
    record = real.out.splitlines()[-1].split()[1]
    shown = cli("show", record, "--failed")
    assert shown.code == 0, shown.err
    assert blocks(shown.out) == FAILED_VIEW
    head = shown.out.splitlines()
    playbook = (two_files / "playbook.yml").resolve()
    assert head[0] == f"RUN      {Path(record).stem}  Output  (playbook {playbook})"
    assert head[1].startswith("    started ") and head[1].endswith(": every step ran")
    assert head[2:4] == ["CHANGED  enrolments  (2 files, 5 lines)", "FILES    2 control files"]
    assert head[-1] == "RECAP ok=0 changed=1 skipped=0 failed=0 | lines: 2 ok, 3 failed"
    assert blocks(cli("show", record).out) == [FAILED_VIEW[0], FAILED_VIEW[5]]


def test_quiet_with_failed_shows_only_the_failures(
    two_files: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(two_files)
    (two_files / "area" / "enrols_c.csv").write_text(HEADER + "add;MATH101;U0003;student\n")
    quiet = cli("run", "playbook.yml", "--check", "-q", "--failed")
    assert quiet.code == 2, quiet.err
    assert quiet.out.splitlines() == [
        "PREVIEW  --check: nothing is changed; the lines below are what the run would do",
        "CHANGED  enrolments  (3 files, 6 lines)",
        *FAILED_VIEW,  # enrols_c.csv had no failed line
        "RECAP ok=0 changed=1 skipped=0 failed=0 | lines: 3 ok, 3 failed"
        "  (preview: nothing changed)",
    ]
    both = cli("run", "playbook.yml", "-v", "--failed")
    assert both.code == 5 and "give one of them" in both.err
    assert cli("run", "playbook.yml", "--failed-limit", "0").code == 5


def test_a_users_files_failed_line_shows_its_password_masked(
    workspace: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace)
    (workspace / "area" / "enrols.csv").unlink()
    (workspace / "area" / "users.csv").write_text(
        "username;idnumber;firstname;lastname;auth;password\n"
        "p2;U2;Bob;Two;ldap;Hunter2-Pw-9f3\n"  # ldap keeps no password: fails
    )
    (workspace / "playbook.yml").write_text(
        TWO_FILES.replace("enrolments", "users").replace("enrols*.csv", "users.csv")
    )
    expected = [
        "    sync users.csv  (1 line: 0 changed, 0 unchanged, 1 failed)",
        "        line 2: failed: auth ldap is not an enabled authentication plugin of the"
        " site (enabled: manual, nologin)",
        "            p2;U2;Bob;Two;ldap;***",
    ]
    preview = cli("run", "playbook.yml", "--check", "--failed")
    real = cli("run", "playbook.yml", "--failed")
    record = real.out.splitlines()[-1].split()[1]
    shown = cli("show", record, "--failed")
    for result in (preview, real, shown):
        assert blocks(result.out) == expected, result.out
        assert "Hunter2" not in result.out + result.err


def test_thousands_of_failed_lines_are_bounded(
    workspace: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace)
    (workspace / "area" / "enrols.csv").write_text(
        HEADER + "".join(f"add;MATH101;X{i:05d};student\n" for i in range(5000))
    )
    preview = cli("run", "playbook.yml", "--check", "--failed")
    real = cli("run", "playbook.yml", "--failed")
    assert preview.code == real.code == 2, real.err
    record = Path(real.out.splitlines()[-1].split()[1])
    run_id = record.stem
    lines = blocks(real.out)
    assert len(lines) == 1 + 2 * 20 + 1, real.out
    assert lines[1:3] == [
        "        line 2: failed: no such user (idnumber X00000)",
        "            add;MATH101;X00000;student",
    ]
    assert lines[-2] == "            add;MATH101;X00019;student"
    report = f".postsync/runs/{run_id}/001_enrols.csv.report"
    assert lines[-1] == (
        f"        ... and 4,980 more failed lines: see {report} (--failed-limit all shows them all)"
    )
    assert (workspace / "area" / report).read_text().count(": failed: ") == 5000
    # the preview's report is gone with it: not named
    assert blocks(preview.out)[-1] == (
        "        ... and 4,980 more failed lines (--failed-limit all shows them all)"
    )
    assert blocks(cli("show", record, "--failed").out) == lines
    some = blocks(cli("show", record, "--failed-limit", "3").out)
    assert len(some) == 1 + 2 * 3 + 1 and "4,997 more" in some[-1]
    every = blocks(cli("show", record, "--failed-limit", "all").out)
    assert len(every) == 1 + 2 * 5000
    assert every[-1] == "            add;MATH101;X04999;student"


def test_a_step_whose_lines_all_failed_is_a_warning_not_ok(
    workspace: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace)
    (workspace / "area" / "enrols.csv").write_text(HEADER + "add;MATH101;U9999;student\n")
    for args in (["--check"], []):
        result = cli("run", "playbook.yml", *args)
        assert result.code == 2, result.err  # lines failed: exit 2, as ever
        lines = result.out.splitlines()
        assert "WARNING  enrolments  (1 file, 1 line)" in lines
        assert lines[-2 if args else -3].startswith("OK       nothing to purge  (")
        assert any(
            line.startswith(
                "RECAP ok=1 changed=0 skipped=0 failed=0 warning=1 | lines: 0 ok, 1 failed"
            )
            for line in lines
        ), result.out
    # an unchanged line beside the failed one: still not ok
    (workspace / "area" / "enrols.csv").write_text(
        HEADER + "add;MATH101;U0001;student\nadd;MATH101;U9999;student\n"
    )
    assert cli("run", "playbook.yml").out.startswith("CHANGED  enrolments")
    again = cli("run", "playbook.yml")
    assert again.code == 2 and again.out.startswith("WARNING  enrolments  (1 file, 2 lines)")
    # the lines all ok: ok
    (workspace / "area" / "enrols.csv").write_text(HEADER + "add;MATH101;U0001;student\n")
    done = cli("run", "playbook.yml")
    assert done.code == 0 and done.out.startswith("OK       enrolments  (1 file, 1 line)")
    assert "warning=" not in done.out
