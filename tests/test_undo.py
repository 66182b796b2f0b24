"""`postsync undo RECORD`: what it refuses, through the CLI, on the demo's run: an
unknown record, a preview's, a run without a journal, a corrupt journal line, a part
that is a symlink, a FIFO or a directory, an existing target, a directory it cannot
write."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import CLI, postsync_process


@pytest.fixture
def record(tmp_path: Path, cli: CLI) -> Path:
    built = cli("demo", tmp_path / "d")
    assert built.code == 0, built.out + built.err
    (found,) = (tmp_path / "d" / "area" / ".postsync" / "runs").glob("*.json")
    return found


def part(record: Path, name: str = "004_enrols.csv.journal") -> Path:
    return record.parent / record.stem / name


def test_an_unknown_record(cli: CLI, tmp_path: Path) -> None:
    result = cli("undo", tmp_path / "nope.json")
    assert result.code == 4
    assert "no such run record" in result.err


def test_a_previews_record(cli: CLI, record: Path) -> None:
    data = json.loads(record.read_text())
    data["check"] = True
    record.write_text(json.dumps(data))
    result = cli("undo", record)
    assert result.code == 4
    assert "from a --check run: nothing was changed, nothing to undo" in result.err


def test_a_run_before_the_journal(cli: CLI, record: Path) -> None:
    data = json.loads(record.read_text())
    for entry in data["control_files"]:
        entry.pop("journal", None)
    record.write_text(json.dumps(data))
    for path in (record.parent / record.stem).glob("*.journal"):
        path.unlink()
    result = cli("undo", record)
    assert result.code == 4
    assert "runs made before postsync kept one cannot be undone" in result.err


def test_a_missing_part(cli: CLI, record: Path) -> None:
    part(record).unlink()
    result = cli("undo", record)
    assert result.code == 4
    assert "004_enrols.csv.journal that the record names is missing" in result.err


def test_a_corrupt_line(cli: CLI, record: Path) -> None:
    lines = part(record).read_text().splitlines(keepends=True)
    lines[6] = lines[6][:40] + "\n"
    part(record).write_text("".join(lines))
    result = cli("undo", record)
    assert result.code == 4
    assert f"{part(record)}:7:1" in result.err
    assert "corrupt journal line: not JSON" in result.err


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory"])
def test_a_part_that_is_no_file(cli: CLI, record: Path, tmp_path: Path, kind: str) -> None:
    target = part(record)
    saved = tmp_path / "saved.journal"
    target.rename(saved)
    if kind == "symlink":
        target.symlink_to(saved)
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    result = cli("undo", record)  # a FIFO is not waited on
    assert result.code == 4
    what = {"symlink": "is a symbolic link: not followed", "fifo": "is a FIFO"}
    assert what.get(kind, "is a directory") in result.err


def test_check_writes_nothing(cli: CLI, record: Path) -> None:
    result = cli("undo", record, "--check")
    assert result.code == 2, result.err
    assert "write 02_enrolments.csv  (enrolments, 39 lines: add 2, del 36, enable 1)" in result.out
    assert not (record.parent.parent / "undo").exists()


def test_an_existing_target(cli: CLI, record: Path, tmp_path: Path) -> None:
    into = tmp_path / "undo"
    into.mkdir()
    (into / "02_enrolments.csv").write_text("mine\n")
    result = cli("undo", record, "--into", into)
    assert result.code == 3
    assert "02_enrolments.csv exists: an undo never overwrites a file" in result.err
    assert sorted(p.name for p in into.iterdir()) == ["02_enrolments.csv"]
    assert (into / "02_enrolments.csv").read_text() == "mine\n"


def test_a_symlinked_directory(cli: CLI, record: Path, tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    result = cli("undo", record, "--into", tmp_path / "link")
    assert result.code == 3
    assert "is not a directory (a symlink is not followed)" in result.err
    assert not list((tmp_path / "real").iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes any directory")
def test_an_unwritable_directory(cli: CLI, record: Path, tmp_path: Path) -> None:
    into = tmp_path / "ro"
    into.mkdir(mode=0o500)
    result = cli("undo", record, "--into", into)
    assert result.code == 3
    assert "nothing was written" in result.err


def test_a_directory_that_cannot_be_made(cli: CLI, record: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x\n")
    result = cli("undo", record, "--into", tmp_path / "file" / "undo")
    assert result.code == 3
    assert "cannot make the directory" in result.err


@pytest.mark.parametrize("point", ["undo.written", "atomic.published"])
def test_an_interrupted_undo_leaves_none_of_its_files(
    cli: CLI, record: Path, tmp_path: Path, point: str
) -> None:
    """SIGTERM once the first file is in place, or as it is put there: all or none, as
    for a directory that refuses a file; the undo run again writes them all."""
    into = tmp_path / "undo"
    stopped = postsync_process(
        "undo", record, "--into", into, env={"POSTSYNC_FAULTS": f"term={point}"}
    )
    assert stopped.returncode == 143, stopped.stdout + stopped.stderr
    assert not into.exists() or list(into.iterdir()) == []
    again = cli("undo", record, "--into", into)
    assert again.code == 2, again.err
    assert {"02_enrolments.csv", "undo.yml", "NOTES.txt"} <= {p.name for p in into.iterdir()}
