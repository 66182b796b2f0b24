"""Every file name Linux allows works end to end: bytes that are not UTF-8, 250 bytes,
a newline. Synced, reported, archived, retried, deleted; stored losslessly in the run
record; shown escaped, so no name can break or forge a line of output."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.reliability.workspace import postsync

NAMES = [
    b"enrols_\xe9t\xe9.csv",  # ISO-8859-1 bytes: not UTF-8
    b"enrols_" + b"x" * 239 + b".csv",  # 250 bytes: a prefix makes it too long
    b"enrols_a\nRECAP ok=99 changed=0 skipped=0 failed=0.csv",  # forges a recap line
    b"enrols_\xc3\xa9.csv",  # UTF-8
]
CONTROL = b"cmd;cid;uid;rolename\nadd;MATH101;U0001;student\nadd;MATH101;U9999;student\n"
PLAYBOOK = """\
name: Names
area: area
database: sqlite:///moodle.db
sync:
  - command: enrolments
    file: "enrols*"
post_treatments:
  - save_report: {}
  - archive_control_files: {compress: COMPRESS}
  - write_retry_file: {}
  - delete_control_files: {}
"""


@pytest.mark.parametrize("compress", ["none", "gzip"])
def test_any_name_goes_through_the_night(tmp_path: Path, compress: str) -> None:
    area = tmp_path / "area"
    area.mkdir()
    assert postsync(tmp_path, "db", "init", "sqlite:///moodle.db", "--demo").returncode == 0
    (tmp_path / "playbook.yml").write_text(PLAYBOOK.replace("COMPRESS", compress))
    for name in NAMES:
        with open(os.path.join(os.fsencode(area), name), "wb") as out:
            out.write(CONTROL)
    preview = postsync(tmp_path, "run", "playbook.yml", "--check", "--output", "jsonl")
    assert preview.returncode == 2, preview.stdout + preview.stderr
    for line in preview.stdout.splitlines():
        json.loads(line)
    result = postsync(tmp_path, "run", "playbook.yml")
    assert result.returncode == 2, result.stdout + result.stderr  # one failed line each
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("RECAP")] == [lines[-2]]
    assert lines[-1].startswith("RECORD   ")
    assert "enrols_\\xe9t\\xe9.csv" in result.stdout
    assert "enrols_a\\nRECAP ok=99" in result.stdout
    assert "changed=5" in lines[-2] and "lines: 4 ok, 4 failed" in lines[-2]
    # every control file archived, then deleted; one retry file each, beside it
    left = os.listdir(os.fsencode(area))
    assert not [n for n in left if n in NAMES]
    assert len([n for n in left if b"_tryback_" in n]) == len(NAMES)
    assert len(os.listdir(os.fsencode(area / "archives"))) == len(NAMES)
    for name in os.listdir(os.fsencode(area / "archives")):
        assert len(name) <= 255
    records = [json.loads(r.read_text()) for r in (area / ".postsync" / "runs").glob("*.json")]
    (record,) = [r for r in records if not r["check"]]
    paths = {os.fsencode(f["path"]) for f in record["control_files"]}
    assert paths == {os.path.join(os.fsencode(area), n) for n in NAMES}  # losslessly
    again = postsync(tmp_path, "run", "playbook.yml", "--output", "json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["exit_code"] == 0
