"""`postsync status AREA` through the CLI: each playbook's last real run of the area, its
verdict (ok, failed, stale) and exit code (0, 3, 7), never fooled or hung by what it
finds in the status file's place."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from runner.core.errors import Exit
from tests.conftest import CLI, HOUSEKEEPING, write_playbook


def status_file(area: Path) -> Path:
    return area / ".postsync" / "status.json"


def test_no_run_is_stale(area: Path, cli: CLI) -> None:
    result = cli("status", area)
    assert result.code == Exit.STALE
    assert result.out == f"STALE    no run of {area} recorded (a preview records none)\n"


def test_a_run_is_ok_a_preview_changes_nothing(tmp_path: Path, area: Path, cli: CLI) -> None:
    playbook = write_playbook(tmp_path, HOUSEKEEPING)
    assert cli("run", playbook, "--check").code == 0
    assert not status_file(area).exists()
    assert cli("run", playbook).code == 0
    result = cli("status", area)
    assert result.code == 0, result.out
    assert result.out.startswith(f"OK       Housekeeping ({playbook}): last run ")
    assert result.out.rstrip().endswith("min ago; exit 0")
    (entry,) = json.loads(cli("status", area, "--output", "json").out)["playbooks"]
    assert entry["verdict"] == "ok" and entry["exit_code"] == 0 and entry["partial"] is False
    assert entry["record"] is None  # a night without control files saves no record


def test_a_failed_step_and_a_stale_run(tmp_path: Path, area: Path, cli: CLI) -> None:
    playbook = write_playbook(tmp_path, HOUSEKEEPING)
    (area / "archives").write_text("a file where a directory should be")
    assert cli("run", playbook).code == Exit.STEP_FAILED
    result = cli("status", area)
    assert result.code == Exit.STEP_FAILED
    assert result.out.startswith("FAILED   Housekeeping")
    assert "exit 3, failed: purge archives" in result.out
    (area / "archives").unlink()
    assert cli("run", playbook, "--tags", "housekeeping").code == 0
    assert "some steps only (--tags)" in cli("status", area).out
    # finished 27 hours ago: stale for the default 26 hours, fine for 30
    document = json.loads(status_file(area).read_text())
    (entry,) = document["playbooks"].values()
    entry["finished"] = (datetime.now(UTC) - timedelta(hours=27)).isoformat()
    status_file(area).write_text(json.dumps(document))
    stale = cli("status", area)
    assert stale.code == Exit.STALE and stale.out.startswith("STALE    ")
    assert "27.0 h ago" in stale.out
    assert cli("status", area, "--max-age-hours", "30").code == 0


def test_a_metrics_file_that_cannot_be_written_is_named(
    tmp_path: Path, area: Path, cli: CLI
) -> None:
    """What failed outside the steps (exit 3 with no failed step) is named by status."""
    playbook = write_playbook(tmp_path, HOUSEKEEPING)
    (tmp_path / "not-a-dir").write_text("a file\n")
    metrics = tmp_path / "not-a-dir" / "postsync.prom"
    assert cli("run", playbook, "--metrics-file", metrics).code == Exit.STEP_FAILED
    result = cli("status", area)
    assert result.code == Exit.STEP_FAILED
    assert f"exit 3, FAILED metrics file {metrics}: " in result.out, result.out
    (entry,) = json.loads(cli("status", area, "--output", "json").out)["playbooks"]
    assert entry["steps_failed"] == [] and entry["problems"][0].startswith("metrics file ")


def test_each_playbook_of_an_area_keeps_its_entry(tmp_path: Path, area: Path, cli: CLI) -> None:
    first = write_playbook(tmp_path, HOUSEKEEPING)
    second = tmp_path / "weekly.yml"
    second.write_text(HOUSEKEEPING.replace("Housekeeping", "Weekly"))
    assert cli("run", first).code == 0
    assert cli("run", second).code == 0
    assert cli("run", first).code == 0
    lines = cli("status", area).out.splitlines()
    assert [line.split("(")[0] for line in lines] == ["OK       Housekeeping ", "OK       Weekly "]


def test_what_is_in_the_status_files_place_is_never_trusted(
    tmp_path: Path, area: Path, cli: CLI
) -> None:
    playbook = write_playbook(tmp_path, HOUSEKEEPING)
    assert cli("run", playbook).code == 0
    path = status_file(area)
    good = path.read_bytes()
    secret = tmp_path / "secret.json"
    secret.write_bytes(good)
    cases = {
        "garbage": lambda: path.write_text("not json"),
        "fields": lambda: path.write_text('{"playbooks": {"x": {"playbook": 1}}}'),
        "huge": lambda: path.write_bytes(b" " * (2 * 1024 * 1024)),
    }
    for name, make in cases.items():
        make()
        result = cli("status", area)
        assert result.code == Exit.STALE, name
        assert "postsync: " in result.err and str(path) in result.err, name
    # a symlink is not followed, a FIFO does not hang it
    path.unlink()
    path.symlink_to(secret)
    assert cli("status", area).code == Exit.STALE
    path.unlink()
    os.mkfifo(path)
    result = cli("status", area)
    assert result.code == Exit.STALE and "not a regular file" in result.err
    path.unlink()
    # a run that cannot save it fails (exit 3), saying so
    path.mkdir()
    result = cli("run", playbook)
    assert result.code == Exit.STEP_FAILED, result.out
    assert "cannot save the area's status" in result.out + result.err
    path.rmdir()
    path.write_text("not json")
    # the next run replaces what it cannot read
    assert cli("run", playbook).code == 0
    assert cli("status", area).code == 0


def test_a_missing_area_is_a_usage_error(tmp_path: Path, cli: CLI) -> None:
    result = cli("status", tmp_path / "nowhere")
    assert result.code == Exit.USAGE and "is not a directory" in result.err
