"""A database password never appears in any output, record, report or error message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import CLI, POSTSYNC
from tests.pgserver import PostgresServer

PASSWORD = "s3cret-pg-pass"
HEADER = "cmd;cid;uid;rolename;starttime;endtime;enrol;gcmd;g1;g2\n"


def everything_written(*roots: Path) -> dict[str, bytes]:
    files = {}
    for root in roots:
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                path = Path(dirpath) / name
                if not path.is_symlink() and path.suffix != ".db":
                    files[str(path)] = path.read_bytes()
    return files


@pytest.fixture
def server(postgresql_server: PostgresServer) -> PostgresServer:
    return postgresql_server


def test_password_never_printed_or_stored(
    server: PostgresServer,
    tmp_path: Path,
    cli: CLI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("MOODLE_DB_PASSWORD", PASSWORD)
    assert server.password == PASSWORD  # trust authentication accepts any password
    url = server.create_database("secrets").replace(f"{server.user}@", f"{server.user}:{PASSWORD}@")
    outputs = [cli("db", "init", url, "--demo"), cli("db", "init", url)]
    assert outputs[0].code == 0 and outputs[1].code == 3
    area = tmp_path / "area"
    area.mkdir()
    lines = "add;MATH101;U0001;student;;;;;;\nadd;NOPE;U0002;student;;;;;;\n"
    (area / "enrols.csv").write_text(HEADER + lines)
    templated = (
        "postgresql+psycopg://{{ env.USER_NAME | default('postgres') }}:"
        "{{ env.MOODLE_DB_PASSWORD }}@127.0.0.1:" + str(server.port) + "/secrets"
    )
    unreachable = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:1/secrets"
    for database in (url, templated, unreachable):
        playbook = tmp_path / "playbook.yml"
        playbook.write_text(
            f'name: Secrets\narea: area\ndatabase: "{database}"\n'
            "sync:\n  - command: enrolments\n    file: enrols.csv\n"
        )
        for args in ([], ["--check"], ["--output", "json"], ["--output", "jsonl"], ["--diff"]):
            outputs.append(cli("run", playbook, *args))
        outputs.append(cli("list-tasks", playbook))
        outputs.append(cli("validate", playbook))
    codes = [o.code for o in outputs[2:]]
    assert codes.count(2) == 10 and codes.count(3) == 5, codes  # synced twice, refused once
    for output in outputs:
        assert PASSWORD not in output.out and PASSWORD not in output.err
    assert any("***" in o.out or "***" in o.err for o in outputs)
    written = everything_written(area, tmp_path / "state")
    assert any("runs" in name for name in written)
    for name, content in written.items():
        assert PASSWORD.encode() not in content, name


def test_password_never_in_a_crash_log(
    server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An internal error (a bug, injected) leaves a traceback log: scanned too."""
    import subprocess

    url = server.create_database("crash").replace(f"{server.user}@", f"{server.user}:{PASSWORD}@")
    area = tmp_path / "area"
    area.mkdir()
    (area / "enrols.csv").write_text(HEADER + "add;MATH101;U0001;student;;;;;;\n")
    (tmp_path / "playbook.yml").write_text(
        f'name: Secrets\narea: area\ndatabase: "{url}"\n'
        "sync:\n  - command: enrolments\n    file: enrols.csv\n"
    )
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    init = subprocess.run(
        [*POSTSYNC, "db", "init", url, "--demo"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    env["POSTSYNC_FAULTS"] = "bug=sync.batch"
    crashed = subprocess.run(
        [*POSTSYNC, "run", "playbook.yml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert crashed.returncode == 1
    assert "internal error: RuntimeError: injected bug at sync.batch" in crashed.stderr
    logs = list((tmp_path / "state" / "postsync").glob("postsync-crash-*.log"))
    assert logs and "Traceback" in logs[0].read_text()
    assert PASSWORD not in init.stdout + init.stderr + crashed.stdout + crashed.stderr
    for name, content in everything_written(area, tmp_path / "state").items():
        assert PASSWORD.encode() not in content, name


def test_a_password_in_an_unexpected_message_is_redacted(
    tmp_path: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a library puts in an error message, the password is masked."""
    from runner.sync import step

    url = f"postgresql+psycopg://moodle:{PASSWORD}@127.0.0.1:1/moodle"

    def leaky(*_args: object) -> None:
        raise RuntimeError(f"driver said: cannot use {url}")

    monkeypatch.setattr(step, "run", leaky)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    (tmp_path / "area").mkdir()
    (tmp_path / "area" / "enrols.csv").write_text(HEADER)
    (tmp_path / "p.yml").write_text(
        f'name: x\narea: area\ndatabase: "{url}"\nsync:\n  - command: enrolments\n'
        "    file: enrols.csv\n"
    )
    result = cli("run", tmp_path / "p.yml")
    assert result.code == 1
    assert "cannot use postgresql+psycopg://moodle:***@127.0.0.1:1/moodle" in result.err
    for name, content in everything_written(tmp_path / "area", tmp_path / "state").items():
        assert PASSWORD.encode() not in content, name


@pytest.mark.parametrize("ensure_ascii", [False, True])
def test_json_is_walked_only_where_a_secret_is(
    monkeypatch: pytest.MonkeyPatch, ensure_ascii: bool
) -> None:
    """secrets.dumps gives what redact_json then json.dumps give, for a secret JSON
    escapes (a quote, a backslash, a control character, non-ASCII), wherever it is in a
    string value; a document without it is the plain text."""
    import json

    from runner.core import secrets

    monkeypatch.setattr(secrets, "_SECRETS", set())
    monkeypatch.setattr(secrets, "_ORDERED", [])
    secret = 'p"a\\ss\x01wörd'
    secrets.register(secret)
    holding = {
        "a": [1, True, None, {"b": f"before {secret} after"}],
        secret: "a key stays as it is",
        "c": secret,
    }
    plain = {"a": [1, True, None, {"b": "nothing to hide"}], "c": "pass"}
    for document in (holding, plain):
        options = {"ensure_ascii": ensure_ascii, "indent": 1}
        expected = json.dumps(secrets.redact_json(document), **options)
        assert secrets.dumps(document, **options) == expected
    text = secrets.dumps(holding, ensure_ascii=ensure_ascii)
    assert json.loads(text)["c"] == secrets.MASK
    assert f"before {secrets.MASK} after" in text
    assert secrets.dumps(plain) == json.dumps(plain)
