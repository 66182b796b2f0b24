"""Progress and colour on a terminal only: a real pseudo-terminal, a real run."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CLI, POSTSYNC

ROOT = Path(__file__).resolve().parent.parent
CLEAR = b"\r\x1b[K"


@pytest.fixture
def workspace(tmp_path: Path, cli: CLI) -> Path:
    """A demo site and an enrolment file of three batches (6,000 lines)."""
    assert cli("db", "init", f"sqlite:///{tmp_path / 'moodle.db'}", "--demo").code == 0
    area = tmp_path / "area"
    area.mkdir()
    body = "".join(f"add;MATH101;U{n % 20 + 1:04d};student\n" for n in range(6000))
    (area / "enrols.csv").write_text("cmd;cid;uid;rolename\n" + body)
    (tmp_path / "playbook.yml").write_text(
        "name: progress\narea: area\ndatabase: sqlite:///moodle.db\n"
        "sync:\n  - command: enrolments\n    file: enrols.csv\n"
        "post_treatments:\n  - save_report: {}\n"
    )
    return tmp_path


def run(
    workspace: Path, *args: str, tty: str, env: dict[str, str] | None = None
) -> tuple[bytes, bytes]:
    """(stdout, stderr) of `postsync run playbook.yml ARGS`, with `tty` ("stdout",
    "stderr" or "none") attached to a pseudo-terminal. The first batch sleeps 1 s (a
    fault point), so the step lasts long enough to show progress."""
    master, slave = pty.openpty()
    out_file = workspace / "stdout"
    err_file = workspace / "stderr"
    full_env = {
        **os.environ,
        "POSTSYNC_FAULTS": "sleep=sync.batch:1",
        "TERM": "xterm",
        "PYTHONPATH": str(ROOT),
        **(env or {}),
    }
    for name in ("NO_COLOR", "FORCE_COLOR"):
        if name not in (env or {}):
            full_env.pop(name, None)
    with open(out_file, "wb") as out, open(err_file, "wb") as err:
        proc = subprocess.Popen(
            [*POSTSYNC, "run", "playbook.yml", *args],
            cwd=workspace,
            env=full_env,
            stdout=slave if tty == "stdout" else out,
            stderr=slave if tty == "stderr" else err,
        )
        os.close(slave)
        seen = b""
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not data:
                break
            seen += data
        proc.wait(timeout=60)
        os.close(master)
    assert proc.returncode in (0, 2)
    stdout = seen if tty == "stdout" else out_file.read_bytes()
    stderr = seen if tty == "stderr" else err_file.read_bytes()
    return stdout, stderr


def test_progress_on_a_terminal(workspace: Path) -> None:
    stdout, stderr = run(workspace, tty="stderr")
    assert b"%  enrols.csv: " in stderr and b" lines" in stderr
    assert stderr.endswith(CLEAR)  # cleared before the step's line is printed
    assert b"\r" not in stdout and b"%  enrols.csv" not in stdout
    assert b"sync enrols.csv  (6000 lines" in stdout


def test_no_progress_when_stderr_is_not_a_terminal(workspace: Path) -> None:
    _stdout, stderr = run(workspace, tty="none")
    assert stderr == b""


@pytest.mark.parametrize("output", ["json", "jsonl"])
def test_no_progress_in_json_modes(workspace: Path, output: str) -> None:
    _stdout, stderr = run(workspace, "--output", output, tty="stderr")
    assert stderr == b""


def test_no_progress_on_a_dumb_terminal(workspace: Path) -> None:
    _stdout, stderr = run(workspace, tty="stderr", env={"TERM": "dumb"})
    assert stderr == b""


def test_colour_on_a_terminal_never_with_no_color(workspace: Path) -> None:
    coloured, _ = run(workspace, tty="stdout")
    assert b"\x1b[33mCHANGED" in coloured
    plain, _ = run(workspace, tty="stdout", env={"NO_COLOR": "1"})
    assert b"\x1b[" not in plain and b"CHANGED" in plain
    piped, _ = run(workspace, tty="none")
    assert b"\x1b[" not in piped
    # NO_COLOR counts only when not empty; FORCE_COLOR colours a pipe (a CI log)
    empty, _ = run(workspace, tty="stdout", env={"NO_COLOR": ""})
    assert b"\x1b[33mCHANGED" in empty
    forced, _ = run(workspace, tty="none", env={"FORCE_COLOR": "1"})
    assert b"\x1b[33mCHANGED" in forced
    for env in ({"FORCE_COLOR": "0"}, {"FORCE_COLOR": "1", "NO_COLOR": "1"}):
        plain, _ = run(workspace, tty="none", env=env)
        assert b"\x1b[" not in plain, env
