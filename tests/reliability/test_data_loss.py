"""Nights that used to lose a file: a control file with an old mtime, one dropped while
the run went on, an archive destination that is the control file, two files for one
archive name, a control file swapped under the sync, a rejected file among good ones.
Each through the real CLI, in a subprocess; the preview lists what the run then does."""

from __future__ import annotations

import gzip
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import POSTSYNC, age, snapshot
from tests.reliability.workspace import postsync

HEADER = "cmd;cid;uid;rolename\n"


def enrolments(course: str, first: int, count: int = 5) -> str:
    return HEADER + "".join(f"add;{course};U{i:04d};student\n" for i in range(first, first + count))


def workspace(root: Path, post: str, sync_file: str = "enrols*.csv", extra: str = "") -> Path:
    (root / "area").mkdir(parents=True)
    init = postsync(root, "db", "init", "sqlite:///moodle.db", "--demo")
    assert init.returncode == 0, init.stderr
    (root / "playbook.yml").write_text(
        "name: Night\narea: area\ndatabase: sqlite:///moodle.db\n"
        f"{extra}sync:\n  - command: enrolments\n    file: '{sync_file}'\n"
        f"post_treatments:\n{post}"
    )
    return root / "area"


def started(root: Path, faults: str) -> subprocess.Popen[str]:
    """`postsync run` in the background, pausing where `faults` says (to act mid-run)."""
    env = {**os.environ, "POSTSYNC_FAULTS": faults, "XDG_STATE_HOME": str(root / "state")}
    return subprocess.Popen(
        [*POSTSYNC, "run", "playbook.yml"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def items(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("    ")]


def preview_then_run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    preview = postsync(root, "run", "playbook.yml", "--check", *args)
    real = postsync(root, "run", "playbook.yml", *args)
    assert items(preview.stdout) == items(real.stdout), (preview.stdout, real.stdout)
    assert preview.returncode == real.returncode, (preview.stdout, real.stdout)
    return real


NIGHT = """\
  - archive_control_files: {dest: "archives/{{ file.name }}", compress: COMPRESS}
  - delete_control_files: {}
  - purge_old_files: {paths: [archives], older_than_days: 90}
"""


@pytest.mark.parametrize("compress", ["none", "gzip"])
def test_an_old_mtime_does_not_get_the_fresh_archive_purged(tmp_path: Path, compress: str) -> None:
    """`cp -p`, `rsync -a`, `scp -p`: the drop keeps its source's old mtime."""
    area = workspace(tmp_path, NIGHT.replace("COMPRESS", compress))
    content = enrolments("MATH101", 1)
    control = area / "enrols.csv"
    control.write_text(content)
    age(control, 200)
    old_mtime = int(control.stat().st_mtime)
    result = preview_then_run(tmp_path)
    assert result.returncode == 0, result.stdout
    assert not control.exists()
    name = "enrols.csv.gz" if compress == "gzip" else "enrols.csv"
    archive = area / "archives" / name
    assert archive.exists(), result.stdout
    assert "delete archives/" not in result.stdout
    if compress == "gzip":
        with gzip.open(archive) as packed:
            assert packed.read().decode() == content
        header = archive.read_bytes()[4:8]
        assert int.from_bytes(header, "little") == old_mtime  # the source's time, kept
    else:
        assert archive.read_text() == content
        assert archive.stat().st_mtime > time.time() - 600  # dated when stored


def test_an_old_identical_archive_counted_as_done_is_not_purged(tmp_path: Path) -> None:
    """The same bytes dropped again: the archive of 200 days ago is their only copy
    once the control file is deleted, so this run does not purge it."""
    area = workspace(tmp_path, NIGHT.replace("COMPRESS", "none"))
    content = enrolments("MATH101", 1)
    (area / "archives").mkdir()
    old = area / "archives" / "enrols.csv"
    old.write_text(content)
    age(old, 200)
    (area / "enrols.csv").write_text(content)
    result = preview_then_run(tmp_path)
    assert result.returncode == 0, result.stdout
    assert not (area / "enrols.csv").exists()
    assert old.read_text() == content
    assert "1 file this run stored kept" in result.stdout


def test_a_control_file_dropped_during_the_run_is_not_purged(tmp_path: Path) -> None:
    post = "  - purge_old_files: {paths: ['.'], older_than_days: 90}\n"
    area = workspace(tmp_path, post)
    (area / "enrols_1.csv").write_text(enrolments("MATH101", 1))
    (area / "old.txt").write_text("stale\n")
    age(area / "old.txt", 200)
    run = started(tmp_path, "sleep=step.done:3")
    time.sleep(1.5)  # the sync step is done; the run sleeps before the purge
    late = area / "enrols_2.csv"
    late.write_text(enrolments("PHYS101", 10))
    age(late, 200)  # copied with its old mtime
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, out + err
    assert late.read_text() == enrolments("PHYS101", 10)
    assert not (area / "old.txt").exists()  # the purge did run
    assert "1 control file awaiting sync kept" in out


def test_an_archive_destination_that_is_the_control_file_is_refused(tmp_path: Path) -> None:
    post = (
        '  - archive_control_files: {dest: "{{ archive_dir }}/{{ file.name }}"}\n'
        "  - delete_control_files: {}\n"
    )
    area = workspace(tmp_path, post, extra="vars:\n  archive_dir: .\n")
    (area / "enrols.csv").write_text(enrolments("MATH101", 1))
    before = snapshot(area)
    for args in ([], ["--check"]):
        result = postsync(tmp_path, "run", "playbook.yml", *args)
        assert result.returncode == 4, result.stdout + result.stderr
        assert "playbook.yml:10:" in result.stderr
        assert "post_treatments[0].archive_control_files.dest" in result.stderr
        assert "would be a control file (sync[0] (enrols*.csv) reads it)" in result.stderr
        assert snapshot(area) == before


def test_a_hard_link_to_the_control_file_is_not_its_archive(tmp_path: Path) -> None:
    post = '  - archive_control_files: {dest: "archives/{{ file.name }}"}\n'
    post += "  - delete_control_files: {}\n"
    area = workspace(tmp_path, post)
    control = area / "enrols.csv"
    control.write_text(enrolments("MATH101", 1))
    (area / "archives").mkdir()
    os.link(control, area / "archives" / "enrols.csv")
    result = preview_then_run(tmp_path)
    assert result.returncode == 0, result.stdout
    assert "archive enrols.csv -> archives/enrols.1.csv" in result.stdout
    assert not control.exists()
    assert (area / "archives" / "enrols.1.csv").read_text() == enrolments("MATH101", 1)


@pytest.mark.parametrize("on_conflict", ["suffix", "fail", "overwrite"])
def test_two_control_files_for_one_archive_name(tmp_path: Path, on_conflict: str) -> None:
    post = (
        f'  - archive_control_files: {{dest: "archives/{{{{ file.name }}}}",'
        f" on_conflict: {on_conflict}}}\n"
        "  - delete_control_files: {}\n"
    )
    area = workspace(tmp_path, post, sync_file="in/*/enrols.csv")
    for sub, course in (("a", "MATH101"), ("b", "PHYS101")):
        (area / "in" / sub).mkdir(parents=True)
        (area / "in" / sub / "enrols.csv").write_text(enrolments(course, 1))
    result = preview_then_run(tmp_path)
    if on_conflict == "suffix":
        assert result.returncode == 0, result.stdout
        assert "archive in/a/enrols.csv -> archives/enrols.csv" in result.stdout
        assert "archive in/b/enrols.csv -> archives/enrols.1.csv" in result.stdout
        assert (area / "archives" / "enrols.csv").read_text() == enrolments("MATH101", 1)
        assert (area / "archives" / "enrols.1.csv").read_text() == enrolments("PHYS101", 1)
        assert not (area / "in" / "a" / "enrols.csv").exists()
        return
    assert result.returncode == 3, result.stdout
    both = "in/a/enrols.csv and in/b/enrols.csv would both go to archives/enrols.csv"
    assert both in result.stdout
    # a/ is archived and deleted; b/ kept: it has no archive
    assert (area / "in" / "b" / "enrols.csv").read_text() == enrolments("PHYS101", 1)
    assert (area / "archives" / "enrols.csv").read_text() == enrolments("MATH101", 1)


def _swap_during_the_sync(tmp_path: Path, swap: str) -> tuple[subprocess.Popen[str], Path]:
    post = "  - save_report: {}\n"
    area = workspace(tmp_path, post)
    (area / "enrols_1.csv").write_text(enrolments("MATH101", 1))
    second = area / "enrols_2.csv"
    second.write_text(enrolments("PHYS101", 10))
    secret = tmp_path / "secret.txt"
    secret.write_text("cmd;cid;uid;rolename\nTOP-SECRET-LINE\n")
    secret.chmod(0o600)
    run = started(tmp_path, "sleep=sync.committed:2")
    # the first file's report is being written: the files were listed, and the run
    # sleeps (2 s) once the first is committed, before it opens the second
    deadline = time.monotonic() + 30
    while not list((area / ".postsync" / "runs").glob("*/*")):
        assert time.monotonic() < deadline, "the run never reached its first file"
        time.sleep(0.02)
    if swap != "replaced":
        second.unlink()
    if swap == "symlink":
        second.symlink_to(secret)
    elif swap == "fifo":
        os.mkfifo(second)
    else:
        other = second.with_name("incoming.tmp")  # another file, renamed under its name
        other.write_text(enrolments("CHEM201", 20))
        other.rename(second)
    return run, area


@pytest.mark.parametrize("swap", ["symlink", "fifo", "replaced"])
def test_a_control_file_swapped_during_the_sync_is_not_read(tmp_path: Path, swap: str) -> None:
    run, area = _swap_during_the_sync(tmp_path, swap)
    out, err = run.communicate(timeout=60)  # a FIFO used to hang here for ever
    assert run.returncode == 3, out + err
    assert "enrols_2.csv: " in out and "not read" in out
    assert "rejected: nothing of it applied, left in place" in out
    assert "write reports/" in out  # the first file's report: the run went on
    written = "".join(
        p.read_text(errors="replace")
        for p in area.rglob("*")
        if p.is_file() and not p.is_symlink() and p.suffix != ""
    )
    assert "TOP-SECRET-LINE" not in out + err + written
    assert "enrols_2.csv" not in "".join(p.name for p in (area / "reports").iterdir())


def test_a_rejected_file_does_not_stop_the_nights_post_treatments(tmp_path: Path) -> None:
    post = (
        '  - save_report: {dest: "reports/{{ file.name }}.txt"}\n'
        '  - archive_control_files: {dest: "archives/{{ file.name }}"}\n'
        "  - delete_control_files: {}\n"
    )
    area = workspace(tmp_path, post)
    bad = area / "enrols_bad.csv"
    bad.write_text("cmd,cid,uid,rolename\nadd,MATH101,U0001,student\n")  # wrong separator
    age(bad, 3)
    bad_state = bad.stat().st_mtime_ns, bad.read_bytes()
    (area / "enrols_good.csv").write_text(enrolments("PHYS101", 1))
    result = preview_then_run(tmp_path)
    assert result.returncode == 3, result.stdout
    assert "FAILED   enrolments  (enrols_bad.csv: line 1: unknown column" in result.stdout
    assert "archive enrols_good.csv -> archives/enrols_good.csv" in result.stdout
    assert "delete enrols_good.csv  (archived)" in result.stdout
    assert not (area / "enrols_good.csv").exists()
    assert (bad.stat().st_mtime_ns, bad.read_bytes()) == bad_state
    assert "RECAP" in result.stdout and "failed=1" in result.stdout
