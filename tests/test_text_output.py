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
