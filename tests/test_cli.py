"""The command line itself: version, help with examples, usage errors, entry points."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runner import __version__
from tests.conftest import CLI, HOUSEKEEPING, write_playbook

ROOT = Path(__file__).parent.parent


def test_version(cli: CLI) -> None:
    with pytest.raises(SystemExit) as exc:
        cli("--version")
    assert exc.value.code == 0


def test_python_dash_m_runner_is_postsync() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runner", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert done.stdout == f"postsync {__version__}\n"


@pytest.mark.parametrize("command", ["run", "validate", "list-tasks", "schema", "show"])
def test_every_subcommand_has_help_with_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from runner.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert f"postsync {command}" in out


def test_no_command_prints_help_and_exits_5(cli: CLI) -> None:
    result = cli()
    assert result.code == 5
    assert "usage: postsync" in result.err


@pytest.mark.parametrize(
    "args",
    [
        ["run"],
        ["run", "p.yml", "--bogus"],
        ["run", "p.yml", "--output", "xml"],
        ["run", "p.yml", "--lock-wait", "soon"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_5(args: list[str], cli: CLI) -> None:
    result = cli(*args)
    assert result.code == 5
    assert result.err.startswith("postsync: ")
    assert not result.err.startswith("postsync: postsync")  # the program named once
    assert "--help" in result.err


def test_negative_lock_wait_is_a_usage_error(tmp_path: Path, area: Path, cli: CLI) -> None:
    playbook = write_playbook(tmp_path, HOUSEKEEPING)
    result = cli("run", playbook, "--lock-wait", "-1")
    assert result.code == 5
    assert "give a finite number of seconds, 0 or more" in result.err


@pytest.mark.parametrize(
    "value,message",
    [
        ("novalue", "expected KEY=VALUE or @FILE.yml"),
        ("bad key=1", "expected KEY=VALUE or @FILE.yml"),
        ("now=1", "'now' is reserved"),
    ],
)
def test_bad_extra_vars_exit_5(
    value: str, message: str, tmp_path: Path, area: Path, cli: CLI
) -> None:
    playbook = write_playbook(tmp_path, HOUSEKEEPING)
    result = cli("run", playbook, "-e", value)
    assert result.code == 5
    assert message in result.err


def test_extra_vars_file_with_duplicate_keys_exits_4(tmp_path: Path, area: Path, cli: CLI) -> None:
    playbook = write_playbook(tmp_path, HOUSEKEEPING)
    (tmp_path / "vars.yml").write_text("a: 1\na: 2\n")
    result = cli("run", playbook, "-e", f"@{tmp_path / 'vars.yml'}")
    assert result.code == 4
    assert f"{tmp_path / 'vars.yml'}:2:1: a: duplicate key 'a'" in result.err


def test_internal_error_exits_1_with_a_log(
    tmp_path: Path, area: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runner.engine.execute

    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(runner.engine.execute, "prepare", broken)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("LOGS_DIRECTORY", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    result = cli("run", write_playbook(tmp_path, HOUSEKEEPING))
    assert result.code == 1
    assert result.err.startswith("postsync: internal error: RuntimeError: boom (traceback in ")
    assert len(result.err.splitlines()) == 1
    (log,) = (tmp_path / "state" / "postsync").iterdir()
    assert "Traceback" in log.read_text()
    assert "RuntimeError: boom" in log.read_text()
    # under systemd (StateDirectory=, LogsDirectory=): there, first
    unit = tmp_path / "var-lib-postsync"
    unit.mkdir()
    monkeypatch.setenv("STATE_DIRECTORY", f"{unit}:{tmp_path / 'second'}")
    result = cli("run", write_playbook(tmp_path, HOUSEKEEPING))
    assert result.code == 1 and str(unit) in result.err
    (log,) = unit.iterdir()
    assert "RuntimeError: boom" in log.read_text()


def test_console_script_is_declared() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert 'postsync = "runner.cli.main:main"' in text


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = [line for line in quickstart.splitlines() if line.startswith("python3 ")]
    assert len(commands) == 2, "the Quickstart has exactly two commands"
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


def test_show_refuses_what_is_not_a_run_record(tmp_path: Path, cli: CLI) -> None:
    playbook = write_playbook(tmp_path, HOUSEKEEPING)
    result = cli("show", playbook)
    assert result.code == 4 and "not JSON" in result.err
    (tmp_path / "other.json").write_text('{"run_id": "x"}')
    result = cli("show", tmp_path / "other.json")
    assert result.code == 4 and "not a postsync run record" in result.err
    assert cli("show", tmp_path / "missing.json").code == 4
