"""Hostile state an attacker who can write the area could leave: links in postsync's
state directory, hand-edited run records, files named like postsync's temporaries.
Nothing outside the area is ever touched, nothing another program owns is removed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runner.storage import makers
from tests.conftest import age, snapshot
from tests.reliability.workspace import postsync

HEADER = "cmd;cid;uid;rolename\n"
CONTROL = HEADER + "".join(f"add;MATH101;U{i:04d};student\n" for i in range(1, 6))
PLAYBOOK = """\
name: Outside
area: area
database: sqlite:///moodle.db
sync:
  - command: enrolments
    file: enrols*.csv
post_treatments:
  - save_report: {dest: "reports/{{ file.name }}.txt"}
    tags: [post]
  - archive_control_files: {dest: "archives/{{ file.name }}"}
    tags: [post]
  - write_retry_file: {}
    tags: [post]
  - delete_control_files: {}
    tags: [post]
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "area").mkdir()
    init = postsync(tmp_path, "db", "init", "sqlite:///moodle.db", "--demo")
    assert init.returncode == 0, init.stderr
    (tmp_path / "playbook.yml").write_text(PLAYBOOK)
    (tmp_path / "area" / "enrols.csv").write_text(CONTROL)
    outside = tmp_path / "outside"
    (outside / "tree" / "deep").mkdir(parents=True)
    for path in (outside / "old.json", outside / "tree" / "deep" / "x.txt", outside / "victim.csv"):
        path.write_text(CONTROL)
        age(path, 400)
    age(outside / "tree", 400)
    return tmp_path


@pytest.mark.parametrize("link", [".postsync/runs", ".postsync"])
@pytest.mark.parametrize("check", [False, True])
def test_a_link_in_the_state_directory_is_never_followed(
    root: Path, link: str, check: bool
) -> None:
    area = root / "area"
    (area / ".postsync").mkdir()
    if link == ".postsync":
        shutil.rmtree(area / ".postsync")
    (area / link).symlink_to(root / "outside")
    before = snapshot(root / "outside")
    result = postsync(root, "run", "playbook.yml", *(["--check"] if check else []))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "symlink" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(root / "outside") == before
    assert (area / "enrols.csv").read_text() == CONTROL


def _synced(root: Path) -> tuple[Path, dict[str, Any]]:
    """A run of the sync alone: its record, for `postsync post`."""
    result = postsync(root, "run", "playbook.yml", "--skip-tags", "post")
    assert result.returncode == 0, result.stdout
    (record,) = (root / "area" / ".postsync" / "runs").glob("*.json")
    return record, json.loads(record.read_text())


def _edit(data: dict[str, Any], change: str, root: Path) -> dict[str, Any]:
    data = json.loads(json.dumps(data))
    entry = data["control_files"][0]
    if change == "path outside":
        entry["path"] = str(root / "outside" / "victim.csv")
    elif change == "path with ..":
        entry["path"] = str(root / "area" / ".." / "outside" / "victim.csv")
    elif change == "path in the state dir":
        entry["path"] = str(root / "area" / ".postsync" / "lock")
    elif change == "path through a symlink":
        (root / "area" / "in").symlink_to(root / "outside")
        entry["path"] = str(root / "area" / "in" / "victim.csv")
    elif change == "run id":
        data["run_id"] = "../../../outside/x"
    elif change == "report outside":
        entry["report"] = "../../../outside/victim.csv"
    elif change == "bad time":
        data["started"] = "yesterday, about one"
    elif change == "naive time":
        data["started"] = "2026-11-24T01:00:00"
    return data


CHANGES = [
    "path outside",
    "path with ..",
    "path in the state dir",
    "path through a symlink",
    "run id",
    "report outside",
    "bad time",
    "naive time",
]


@pytest.mark.parametrize("change", CHANGES)
def test_a_hand_edited_record_is_refused_before_anything(root: Path, change: str) -> None:
    record, data = _synced(root)
    record.write_text(json.dumps(_edit(data, change, root)))
    before_area, before_outside = snapshot(root / "area"), snapshot(root / "outside")
    result = postsync(root, "post", str(record))
    assert result.returncode == 4, result.stdout + result.stderr
    assert f"{record}:1:1:" in result.stderr
    assert "internal error" not in result.stderr
    assert snapshot(root / "outside") == before_outside
    assert snapshot(root / "area") == before_area
    assert not (root / "escaped.json").exists()


def test_a_record_copied_out_of_its_area_is_refused(root: Path) -> None:
    record, _data = _synced(root)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    copy = shutil.copy(record, elsewhere / record.name)
    result = postsync(root, "post", str(copy))
    assert result.returncode == 4, result.stderr
    assert "records stay in AREA/.postsync/runs" in result.stderr
    assert (root / "area" / "enrols.csv").read_text() == CONTROL


def test_the_untouched_record_still_posts(root: Path) -> None:
    record, _data = _synced(root)
    result = postsync(root, "post", str(record))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / "area" / "archives" / "enrols.csv").read_text() == CONTROL
    assert not (root / "area" / "enrols.csv").exists()


def test_only_postsyncs_own_temporaries_are_cleaned_up(root: Path) -> None:
    """An uploader's in-progress file, even one named as postsync's used to be, stays."""
    area = root / "area"
    (area / "archives").mkdir()
    theirs = [
        area / ".enrols.csv.abcd1234.tmp",  # postsync's old pattern: an uploader's now
        area / ".enrols.csv.part",
        area / "archives" / ".upload.0123abcd.tmp",
    ]
    for path in theirs:
        path.write_text("in progress\n")
    other_user = area / ".postsync-0123abcd-enrols.csv.tmp"
    other_user.write_text("another user's\n")
    try:
        os.chown(other_user, 4242, 4242)
    except PermissionError:
        other_user.unlink()  # not root: no other user to own it
    # postsync's pattern before temporaries named their maker: it might be another
    # host's, in flight; it is never proven gone
    theirs.append(area / "archives" / ".postsync-deadbeef-enrols.csv.tmp")
    theirs[-1].write_text("in progress\n")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    name = f".postsync-{makers.host()}-{dead.pid}-1-deadbeef-enrols.csv.tmp"
    leftover = area / "archives" / name
    leftover.write_text("half a file a killed run left\n")
    result = postsync(root, "run", "playbook.yml")
    assert result.returncode == 0, result.stdout
    for path in theirs:
        assert path.read_text() == "in progress\n"
    if other_user.exists():
        assert other_user.read_text() == "another user's\n"
    assert not leftover.exists()
