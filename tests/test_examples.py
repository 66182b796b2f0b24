"""The example playbooks users copy, run end to end on the demo database."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from runner.cli.demo import write_files
from tests.conftest import CLI, snapshot

ROOT = Path(__file__).resolve().parent.parent


def items(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("    ")]


def test_nightly_example_end_to_end(
    tmp_path: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    area = tmp_path / "area"
    area.mkdir()
    database = f"sqlite:///{tmp_path / 'moodle.db'}"
    assert cli("db", "init", database, "--demo").code == 0
    write_files(area)
    monkeypatch.setenv("POSTSYNC_AREA", str(area))
    monkeypatch.setenv("POSTSYNC_DB", database)
    playbook = ROOT / "playbooks" / "nightly.yml"
    if time.localtime().tm_sec > 50:  # the names carry the minute
        time.sleep(61 - time.localtime().tm_sec)
    before = snapshot(area, own_state=False)
    preview = cli("run", playbook, "--check")
    assert snapshot(area, own_state=False) == before
    real = cli("run", playbook)
    assert preview.code == real.code == 2, real.out
    assert items(preview.out) == items(real.out)
    assert len(items(real.out)) > 10
    assert not (area / "enrols.csv").exists()
    assert len(list((area / "archives").iterdir())) == 5
    again = cli("run", playbook)
    assert again.code == 0, again.out
    assert "changed=0" in again.out


def test_housekeeping_example_previews(
    tmp_path: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "archives").mkdir()
    monkeypatch.setenv("POSTSYNC_AREA", str(tmp_path))
    result = cli("run", ROOT / "playbooks" / "housekeeping.yml", "--check")
    assert result.code == 0, result.out
