"""The scheduling examples (examples/): their postsync commands are real commands.

The systemd unit and the cron lines are parsed and their postsync invocations checked
against the CLI's own parser; the CI job's script runs for real in a scratch
repository (its `pip install` aside: postsync is already installed here).
"""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from runner.cli.parser import build_parser
from runner.core.errors import Exit
from tests.conftest import missing

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def postsync_args(command: str) -> list[list[str]]:
    """The arguments of every postsync invocation in a shell command."""
    found = []
    for part in command.replace(";", " ; ").replace("&&", " ; ").split(" ; "):
        words = shlex.split(part, comments=False)
        for i, word in enumerate(words):
            if word.endswith("/postsync") or word == "postsync":
                args = words[i + 1 :]
                cut = next(
                    (j for j, a in enumerate(args) if a[:1] in "<>|" or a[:2] in (">>", "2>")),
                    len(args),
                )
                found.append(args[:cut])
                break
    return found


def parses(args: list[str]) -> None:
    build_parser().parse_args(args)  # SystemExit on an unknown option


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(EXAMPLES / "systemd" / name)
    return parser


def test_systemd_service_runs_a_real_command_and_accepts_exit_2() -> None:
    service = unit("postsync-nightly.service")
    ((args),) = postsync_args(service["Service"]["ExecStart"])
    assert args[0] == "run"
    parses(args)
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["SuccessExitStatus"].split() == [
        str(int(Exit.LINES_FAILED)),
        str(int(Exit.TERMINATED)),
    ]
    assert service["Service"]["StateDirectory"] == "postsync"
    timer = unit("postsync-nightly.timer")
    assert timer["Timer"]["OnCalendar"] and timer["Install"]["WantedBy"] == "timers.target"


def test_systemd_units_verify(tmp_path: Path) -> None:
    if not shutil.which("systemd-analyze"):
        missing("systemd-analyze", "systemd-analyze not installed (Debian's systemd package)")
    names = ("postsync-nightly.service", "postsync-nightly.timer", "postsync-alert@.service")
    for name in names:
        shutil.copy(EXAMPLES / "systemd" / name, tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / n) for n in names[1:])],
        capture_output=True,
        text=True,
        check=False,
    )
    # the unit names paths of the target machine (User=, ExecStart=): only syntax here
    assert "Unknown key" not in result.stderr and "Invalid" not in result.stderr, result.stderr
    assert "Failed" not in result.stderr and "ignoring" not in result.stderr, result.stderr


def test_the_service_writes_its_metrics_where_it_may_and_alerts_on_failure() -> None:
    """The metrics path of ExecStart is among ReadWritePaths (ProtectSystem=strict makes
    every other path read-only), and OnFailure= names the alert unit shipped beside it."""
    service = unit("postsync-nightly.service")
    assert service["Service"]["ProtectSystem"] == "strict"
    ((args),) = postsync_args(service["Service"]["ExecStart"])
    metrics = Path(args[args.index("--metrics-file") + 1])
    writable = [Path(p) for p in service["Service"]["ReadWritePaths"].split()]
    assert any(metrics.parent == p or p in metrics.parents for p in writable), writable
    alert = service["Unit"]["OnFailure"]
    assert alert == "postsync-alert@%n.service"
    assert (EXAMPLES / "systemd" / "postsync-alert@.service").is_file()


def test_the_alert_unit_mails_the_failed_units_status(tmp_path: Path) -> None:
    """The alert unit's own command, as systemd runs it for postsync-nightly.service
    (%i the instance, $$ a $), with `systemctl` and `mail` stand-ins: one mail to the
    configured address naming the unit and the host, the unit's status as its body."""
    alert = unit("postsync-alert@.service")["Service"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text('#!/bin/sh\necho "status of $*"\n')
    (bin_dir / "mail").write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/args\ncat > {tmp_path}/body\n'
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    failed = "postsync-nightly.service"
    command = shlex.split(alert["ExecStart"].replace("%i", failed).replace("$$", "$"))
    name, _, value = alert["Environment"].partition("=")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", name: value}
    subprocess.run(command, env=env, check=True, timeout=30)
    host = subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
    args = (tmp_path / "args").read_text().splitlines()
    assert args == ["-s", f"{failed} failed on {host}", "moodle-admins@example.org"]
    body = (tmp_path / "body").read_text()
    assert body == f"status of status --full --no-pager --lines=50 {failed}\n"


def _cron_jobs() -> list[str]:
    return [
        line
        for line in (EXAMPLES / "cron" / "postsync").read_text().splitlines()
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]
    ]


def test_cron_lines_run_real_commands() -> None:
    jobs = _cron_jobs()
    assert len(jobs) == 2
    for job in jobs:
        fields = job.split(None, 6)
        assert len(fields[:5]) == 5 and fields[5] == "postsync", job  # m h dom mon dow user
        (args,) = postsync_args(fields[6])
        parses(args)
        assert "%" not in fields[6]  # cron turns % into a newline


@pytest.mark.parametrize("code", [0, 1, 2, 3, 4, 5, 6, 130, 143])
def test_cron_lines_mail_every_run_that_did_not_complete(tmp_path: Path, code: int) -> None:
    """The cron lines' own shell logic, with postsync replaced by a stand-in exiting with
    `code`: a line on stdout (what cron mails) for every exit but 0 and 2."""
    stand_in = tmp_path / "postsync"
    stand_in.write_text(f"#!/bin/sh\necho the run output\nexit {code}\n")
    stand_in.chmod(0o755)
    (tmp_path / "log").mkdir()
    for job in _cron_jobs():
        command = job.split(None, 6)[6]
        command = command.replace(". /etc/postsync/nightly.env", ":")
        command = command.replace("/opt/postsync/bin/postsync", str(stand_in))
        command = command.replace("/var/log/postsync/", f"{tmp_path}/log/")
        result = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True)
        assert result.returncode == 0 and result.stderr == ""
        mailed = result.stdout
        if code in (0, 2):
            assert mailed == "", job
        else:
            assert mailed.startswith("postsync ") and f"failed: exit {code}, see " in mailed
        assert "the run output" in next((tmp_path / "log").iterdir()).read_text()
        for log in (tmp_path / "log").iterdir():
            log.unlink()


def test_gitlab_ci_job_validates_and_previews(tmp_path: Path) -> None:
    job = yaml.safe_load((EXAMPLES / "ci" / "gitlab-ci.yml").read_text())["postsync-check"]
    assert job["rules"][0]["if"] == '$CI_PIPELINE_SOURCE == "merge_request_event"'
    assert job["allow_failure"]["exit_codes"] == [int(Exit.LINES_FAILED)]
    # a scratch repository of playbooks, with a sample feed
    repo = tmp_path / "repo"
    (repo / "playbooks").mkdir(parents=True)
    shutil.copy(ROOT / "playbooks" / "nightly.yml", repo / "playbooks")
    (repo / "samples").mkdir()
    (repo / "samples" / "enrols.csv").write_text(
        "cmd;cid;uid;rolename\nadd;MATH101;U0001;student\nadd;NOPE;U0001;student\n"
    )
    bindir = tmp_path / "bin"
    bindir.mkdir()
    launcher = bindir / "postsync"
    launcher.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m runner "$@"\n')
    launcher.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
        "CI_PROJECT_DIR": str(repo),
        "PYTHONPATH": str(ROOT),
    }
    for key, value in job["variables"].items():
        env[key] = value.replace("$CI_PROJECT_DIR", str(repo))
    codes = []
    for line in job["script"]:
        if line.startswith("pip install"):
            continue
        result = subprocess.run(
            ["sh", "-c", line], cwd=repo, env=env, capture_output=True, text=True, check=False
        )
        codes.append(result.returncode)
        assert result.returncode in (0, 2), f"{line}: {result.stdout}{result.stderr}"
    assert codes[-1] == 2  # the preview of the sample: one line fails (no course NOPE)
    assert "PREVIEW" in result.stdout
    assert (repo / "samples" / "enrols.csv").exists()
    assert list((repo / "ci-area").glob("*.csv")) == [repo / "ci-area" / "enrols.csv"]
