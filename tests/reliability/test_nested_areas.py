"""An area nested in another (B = A/sub, each with its playbook): A's steps never reach
B's state directory. A's purge never enters B (B's lock keeps holding, B's records
stay, B's control files wait for B's run), A's globs never match in its state, and no
path of A's may point into its state, nor a purge or a destination into B."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import age, make_file, write_playbook
from tests.reliability.workspace import postsync
from tests.test_lock import HOLDER

RECORD = "20260101T000000-abcdef"


def playbook(root: Path, name: str, area: str, post: str) -> Path:
    return write_playbook(root, f"name: {name}\narea: {area}\npost_treatments:\n{post}", name)


@pytest.fixture
def nested(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A and B = A/sub, B's state made by a run of its own, its lock held by a process,
    its lock file and a record older than A's purge limit."""
    inner = tmp_path / "A" / "sub"
    inner.mkdir(parents=True)
    own = playbook(
        tmp_path, "b.yml", "A/sub", "  - purge_old_files: {paths: [x], older_than_days: 1}\n"
    )
    assert postsync(tmp_path, "run", own.name).returncode == 0
    state = inner / ".postsync"
    make_file(state / "runs" / f"{RECORD}.json", days=50, content="{}\n")
    make_file(state / "runs" / RECORD / "001_enrols.csv.report", days=50)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(inner), "60"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "locked\n"
    age(state / "lock", 50)
    try:
        yield tmp_path, inner
    finally:
        holder.kill()
        holder.wait()


def test_a_purge_never_enters_a_nested_areas_state(nested: tuple[Path, Path]) -> None:
    root, inner = nested
    outer = root / "A"
    old = [make_file(outer / "old.csv", days=50), make_file(inner / ".old.csv", days=50)]
    purge = "  - purge_old_files: {paths: ['.'], older_than_days: 1, recurse: true, hidden: true}\n"
    result = postsync(root, "run", playbook(root, "a.yml", "A", purge).name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "delete old.csv" in result.stdout
    assert "kept: sub is another area (sub/.postsync)" in result.stdout
    assert not old[0].exists()
    assert old[1].exists()  # B's, however old: A's purge never enters B
    state = inner / ".postsync"
    assert (state / "lock").exists()
    assert (state / "runs" / f"{RECORD}.json").exists()
    assert (state / "runs" / RECORD / "001_enrols.csv.report").exists()
    # B's lock still stops a second run of B while its holder runs
    second = postsync(root, "run", "b.yml")
    assert second.returncode == 6, second.stdout + second.stderr
    assert "another run holds the lock" in second.stderr


@pytest.mark.parametrize(
    "post",
    [
        "  - purge_old_files: {paths: [sub/.postsync/runs], older_than_days: 1}\n",
        "  - purge_old_files: {paths: [sub/.postsync], older_than_days: 1}\n",
    ],
)
def test_no_path_may_point_into_a_nested_areas_state(nested: tuple[Path, Path], post: str) -> None:
    root, inner = nested
    result = postsync(root, "run", playbook(root, "a.yml", "A", post).name)
    assert result.returncode == 4, result.stdout + result.stderr
    assert f"{inner / '.postsync'}, another area's postsync state directory" in result.stderr
    assert (inner / ".postsync" / "runs" / f"{RECORD}.json").exists()


def test_an_archive_never_goes_into_a_nested_areas_state(nested: tuple[Path, Path]) -> None:
    root, inner = nested
    (root / "A" / "enrols.csv").write_text("cmd;cid;uid;rolename\n")
    body = (
        "name: A\narea: A\ndatabase: sqlite:///moodle.db\nsync:\n"
        "  - command: enrolments\n    file: enrols.csv\npost_treatments:\n"
        "  - archive_control_files: {dest: 'sub/.postsync/runs/{{ file.name }}'}\n"
    )
    result = postsync(root, "validate", write_playbook(root, body, "a.yml").name)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "post_treatments[0].archive_control_files.dest" in result.stderr
    assert f"{inner / '.postsync'}, another area's postsync state directory" in result.stderr
    assert (inner / ".postsync" / "runs" / f"{RECORD}.json").exists()


@pytest.mark.parametrize("pattern", [".*/runs/*", "*/.*/runs/*"])  # A's own state, B's
def test_a_glob_never_matches_in_a_state_directory(nested: tuple[Path, Path], pattern: str) -> None:
    root, inner = nested
    outer = root / "A"
    make_file(outer / ".postsync" / "runs" / "x.csv")  # A's own state, as a hidden dir
    init = postsync(root, "db", "init", "sqlite:///moodle.db", "--demo")
    assert init.returncode == 0, init.stderr
    body = (
        "name: A\narea: A\ndatabase: sqlite:///moodle.db\nsync:\n"
        f"  - command: enrolments\n    file: '{pattern}'\n"
        "post_treatments:\n  - archive_control_files: {dest: 'archives/{{ file.name }}'}\n"
    )
    result = postsync(root, "run", write_playbook(root, body, "a.yml").name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "archive" not in result.stdout.replace("archive_control_files", "")
    assert not (outer / "archives").exists()
    assert (inner / ".postsync" / "runs" / f"{RECORD}.json").read_text() == "{}\n"


def test_a_purge_never_deletes_a_nested_areas_control_files(tmp_path: Path) -> None:
    """B = A/B has run once; a control file dropped into B with its old mtime kept (as
    `rsync -a` does) waits for B's run, however old, and so does C = A/deep/C's."""
    outer, inner = tmp_path / "A", tmp_path / "A" / "B"
    inner.mkdir(parents=True)
    own = playbook(
        tmp_path, "b.yml", "A/B", "  - purge_old_files: {paths: [x], older_than_days: 1}\n"
    )
    assert postsync(tmp_path, "run", own.name).returncode == 0
    (outer / "deep" / "C" / ".postsync").mkdir(parents=True)
    dropped = [
        make_file(inner / "users_1.csv", days=100),
        make_file(inner / "archives" / "old.csv", days=100),
        make_file(outer / "deep" / "C" / "users_2.csv", days=100),
    ]
    old = make_file(outer / "deep" / "old.csv", days=100)
    purge = "  - purge_old_files: {paths: ['.'], older_than_days: 30, recurse: true}\n"
    name = playbook(tmp_path, "a.yml", "A", purge).name
    note = "kept: B, deep/C are other areas (each has its .postsync)"
    preview = postsync(tmp_path, "run", name, "--check")
    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert note in preview.stdout
    assert "delete deep/old.csv  (100 days old)" in preview.stdout
    assert "users_" not in preview.stdout
    result = postsync(tmp_path, "run", name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert note in result.stdout
    assert "delete deep/old.csv  (100 days old)" in result.stdout
    assert "users_" not in result.stdout
    assert not old.exists()
    assert all(path.exists() for path in dropped)


@pytest.mark.parametrize("path", ["sub", "sub/archives", "sub/archives/2026", "{{ 'sub' }}/x"])
def test_no_purge_path_may_name_a_nested_area(nested: tuple[Path, Path], path: str) -> None:
    root, inner = nested
    make_file(inner / "archives" / "2026" / "users_1.csv", days=100)
    make_file(inner / "x" / "users_2.csv", days=100)
    post = f'  - purge_old_files: {{paths: ["{path}"], older_than_days: 1}}\n'
    result = postsync(root, "run", playbook(root, "a.yml", "A", post).name)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "post_treatments[0].purge_old_files.paths[0]" in result.stderr
    where = f"{inner} is" if path == "sub" else f"is in {inner},"
    assert f"{where} another area (it has its {inner / '.postsync'})" in result.stderr
    assert (inner / "archives" / "2026" / "users_1.csv").exists()
    assert (inner / "x" / "users_2.csv").exists()


@pytest.mark.parametrize(
    "step",
    [
        "archive_control_files: {dest: 'sub/archives/{{ file.name }}'}",
        "save_report: {dest: 'sub/{{ file.name }}.report'}",
    ],
)
def test_no_destination_may_be_in_a_nested_area(nested: tuple[Path, Path], step: str) -> None:
    root, inner = nested
    (root / "A" / "enrols.csv").write_text("cmd;cid;uid;rolename\n")
    body = (
        "name: A\narea: A\ndatabase: sqlite:///moodle.db\nsync:\n"
        f"  - command: enrolments\n    file: enrols.csv\npost_treatments:\n  - {step}\n"
    )
    result = postsync(root, "validate", write_playbook(root, body, "a.yml").name)
    assert result.returncode == 4, result.stdout + result.stderr
    assert ".dest" in result.stderr
    assert f"is in {inner}, another area (it has its {inner / '.postsync'})" in result.stderr
    assert sorted(p.name for p in inner.iterdir()) == [".postsync"]
