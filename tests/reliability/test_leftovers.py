"""What a run leaves when it is killed, and who may remove it: a temporary file is
removed by the run that made it, or by a later run once its maker is provably gone (a
process of this host, no longer alive); a run directory no record points to goes with
the next run. Two areas writing into one `roots:` directory never remove each other's
temporaries in flight. These start real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from runner.storage import makers
from tests.conftest import snapshot, write_playbook
from tests.reliability.test_outside_area import CONTROL
from tests.reliability.workspace import postsync

FLOW = """\
name: {name}
area: {area}
database: sqlite:///{area}.db
roots: [{roots}]
sync:
  - command: enrolments
    file: enrols*.csv
post_treatments:
  - save_report: {{dest: "reports/{{{{ file.name }}}}.txt"}}
    tags: [post]
  - archive_control_files: {{dest: "{archives}/{name}_{{{{ file.name }}}}"}}
    tags: [post]
  - delete_control_files: {{}}
    tags: [post]
"""


def area(root: Path, name: str, archives: str = "archives", roots: str = "") -> Path:
    (root / name).mkdir()
    init = postsync(root, "db", "init", f"sqlite:///{name}.db", "--demo")
    assert init.returncode == 0, init.stderr
    (root / name / "enrols.csv").write_text(CONTROL)
    body = FLOW.format(name=name, area=name, archives=archives, roots=roots)
    if archives != "archives":  # the first write of its post-treatments: the archive
        body = body.replace('  - save_report: {dest: "reports/{{ file.name }}.txt"}\n', "")
        body = body.replace("    tags: [post]\n  - archive", "  - archive", 1)
    return write_playbook(root, body, f"{name}.yml")


def temporary(directory: Path, maker: str, final: str = "enrols.csv") -> Path:
    path = directory / f".postsync-{maker}-0123abcd-{final}.tmp"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("half a file\n")
    return path


def dead_pid() -> int:
    """The id of a process that ran and is gone (reaped)."""
    gone = subprocess.run([sys.executable, "-c", "pass"], check=True)
    del gone
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def cleanup_lines(out: str) -> list[str]:
    lines = out.splitlines()
    if not any(line.startswith("CLEANUP") for line in lines):
        return []
    start = next(i for i, line in enumerate(lines) if line.startswith("CLEANUP"))
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("    remove "):
            break
        block.append(line)
    return block


def cleaned(root: Path, playbook: Path) -> list[str]:
    """What a preview, then a run that writes nowhere near reports/ or archives/, say
    they remove (the same); the preview removes nothing."""
    before = snapshot(root / "area")
    preview = postsync(root, "run", playbook.name, "--skip-tags", "post", "--check")
    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert snapshot(root / "area") == before
    result = postsync(root, "run", playbook.name, "--skip-tags", "post")
    assert result.returncode == 0, result.stdout + result.stderr
    assert cleanup_lines(preview.stdout) == cleanup_lines(result.stdout)
    return cleanup_lines(result.stdout)


def runs(area_dir: Path) -> Path:
    return area_dir / ".postsync" / "runs"


def test_a_killed_runs_leftovers_go_with_the_next_run(tmp_path: Path) -> None:
    playbook = area(tmp_path, "area")
    place = tmp_path / "area"
    # a run whose post-treatments are still to run: its record and reports must stay
    synced = postsync(tmp_path, "run", playbook.name, "--skip-tags", "post")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    (record,) = runs(place).glob("*.json")
    kept = runs(place) / record.stem
    assert sorted(p.name for p in kept.iterdir()) == [
        "001_enrols.csv.journal",
        "001_enrols.csv.report",
    ]
    # its post-treatments killed while writing the report: a temporary in reports/
    killed = postsync(tmp_path, "post", str(record), faults="kill=atomic.written")
    assert killed.returncode == -9, killed.stdout + killed.stderr
    (left,) = (place / "reports").iterdir()
    assert left.name.startswith(".postsync-") and left.name.endswith("-enrols.csv.txt.tmp")
    assert cleaned(tmp_path, playbook) == [
        "CLEANUP  1 leftover of a killed run",
        f"    remove reports/{left.name}  (a killed run's temporary file)",
    ]
    assert not left.exists()
    # a run killed once its first report is published, before its record is saved
    killed = postsync(tmp_path, "run", playbook.name, faults="kill=atomic.published")
    assert killed.returncode == -9, killed.stdout + killed.stderr
    (orphan,) = [
        p for p in runs(place).iterdir() if p.is_dir() and not p.with_suffix(".json").exists()
    ]
    assert [p.name for p in orphan.iterdir()] == ["001_enrols.csv.report"]
    assert cleaned(tmp_path, playbook) == [
        "CLEANUP  1 leftover of a killed run",
        f"    remove .postsync/runs/{orphan.name}  (a killed run's reports, no record points"
        " to them)",
    ]
    assert not orphan.exists()
    assert not list(runs(place).glob("*.dirs"))  # the dead runs' journals
    # the record's reports are still there: its post-treatments run now
    assert sorted(p.name for p in kept.iterdir()) == [
        "001_enrols.csv.journal",
        "001_enrols.csv.report",
    ]
    posted = postsync(tmp_path, "post", str(record))
    assert posted.returncode == 0, posted.stdout + posted.stderr
    assert (place / "archives" / "area_enrols.csv").read_text() == CONTROL
    assert cleanup_lines(posted.stdout) == []


def test_only_a_dead_makers_temporaries_are_removed(tmp_path: Path) -> None:
    playbook = write_playbook(
        tmp_path,
        "name: Tidy\narea: area\npost_treatments:\n"
        "  - purge_old_files: {paths: [archives], older_than_days: 1}\n",
    )
    place = tmp_path / "area"
    place.mkdir()
    here, dead = makers.host(), dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        found = makers.start_time(live.pid)
        assert found is not None
        outside = tmp_path / "secret"
        outside.write_text("not postsync's\n")
        linked = place / f".postsync-{here}-{dead}-1-0123abcd-x.tmp"
        linked.symlink_to(outside)
        gone = [
            temporary(place, f"{here}-{dead}-12345"),  # its process gone
            temporary(place, f"{here}-{live.pid}-{int(found[1]) + 1}"),  # its id reused
        ]
        stay = [
            temporary(place, f"{here}-{live.pid}-{found[1]}"),  # alive
            temporary(place, f"{'0' if here[0] != '0' else '1'}{here[1:]}-{dead}-12345"),
            place / ".postsync-0123abcd-enrols.csv.tmp",  # names no maker: never proven gone
        ]
        stay[-1].write_text("half a file\n")
        result = postsync(tmp_path, "run", playbook.name)
        assert result.returncode == 0, result.stdout + result.stderr
        assert not any(p.exists() for p in gone)
        assert all(p.read_text() == "half a file\n" for p in stay)
        assert os.readlink(linked) == str(outside)
        assert outside.read_text() == "not postsync's\n"
        assert len(cleanup_lines(result.stdout)) == 1 + len(gone)
    finally:
        live.kill()
        live.wait()


def test_two_areas_archiving_into_one_root_keep_each_others_temporaries(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    first = area(tmp_path, "a", archives=str(shared), roots=str(shared))
    second = area(tmp_path, "b", archives=str(shared), roots=str(shared))
    synced = postsync(tmp_path, "run", first.name, "--skip-tags", "post")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    (record,) = runs(tmp_path / "a").glob("*.json")
    # a's archive stops half-written, in the shared directory, until `go` exists
    go = tmp_path / "go"
    env = {**os.environ, "POSTSYNC_FAULTS": f"wait=atomic.written:{go}"}
    archiving = subprocess.Popen(
        [sys.executable, "-m", "runner", "post", str(record)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(shared.glob(".postsync-*-a_enrols.csv.tmp")):
            assert time.monotonic() < deadline and archiving.poll() is None
            time.sleep(0.02)
        (in_flight,) = shared.glob(".postsync-*-a_enrols.csv.tmp")
        # b runs meanwhile, archiving into the same directory
        other = postsync(tmp_path, "run", second.name)
        assert other.returncode == 0, other.stdout + other.stderr
        assert (shared / "b_enrols.csv").read_text() == CONTROL
        assert in_flight.exists()
    finally:
        go.touch()
        out, err = archiving.communicate(timeout=120)
    assert archiving.returncode == 0, out + err
    assert (shared / "a_enrols.csv").read_text() == CONTROL
    assert not list(shared.glob(".postsync-*"))
