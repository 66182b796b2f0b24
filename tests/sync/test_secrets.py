"""A database password never appears in any output, record, report or error message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import CLI
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
