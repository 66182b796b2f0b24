"""`validate` makes run's checks; what a run rejects before anything changes is said
clearly: tags no step has, a UTF-8 file declared ISO-8859-1, a wrong table prefix,
templated numbers (the site's own checks: tests/sync/test_preflight.py).

The "validate said ok, run said 4" corpus is tests/cases/bad_playbooks (every case is
checked through both commands in tests/test_playbook_errors.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CLI, HOUSEKEEPING, write_playbook


@pytest.mark.parametrize("option", ["--tags", "--skip-tags"])
@pytest.mark.parametrize("command", ["run", "list-tasks"])
def test_a_tag_no_step_has_is_a_usage_error(
    option: str, command: str, tmp_path: Path, area: Path, cli: CLI
) -> None:
    playbook = write_playbook(tmp_path, HOUSEKEEPING)
    result = cli(command, playbook, option, "housekeping")
    assert result.code == 5
    assert result.err == (
        "postsync: no step has the tag housekeping (the playbook's tags: housekeeping;"
        " also all, always, never)\n"
    )
    assert cli(command, playbook, option, "housekeeping,always").code == 0


def test_post_refuses_an_unknown_tag_too(tmp_path: Path, area: Path, cli: CLI) -> None:
    playbook = write_playbook(tmp_path, HOUSEKEEPING)
    record = tmp_path / "r.json"
    record.write_text("{}")
    assert cli("post", record, "--playbook", playbook, "--tags", "nope").code in (4, 5)


def test_templated_days_follow_e(tmp_path: Path, area: Path, cli: CLI) -> None:
    (area / "archives").mkdir()
    playbook = write_playbook(
        tmp_path,
        "name: Keep\narea: area\nvars: {keep: 90}\npost_treatments:\n"
        "  - purge_old_files: {paths: [archives], older_than_days: '{{ keep }}'}\n",
    )
    assert cli("validate", playbook).code == 0
    assert "(nothing older than 90 days)" in cli("run", playbook, "--check").out
    assert "(nothing older than 30 days)" in cli("run", playbook, "--check", "-e", "keep=30").out
    bad = cli("validate", playbook, "-e", "keep=0")
    assert bad.code == 4
    assert "older_than_days: renders to '0', not an integer >= 1" in bad.err


def test_list_tasks_shows_rendered_names_aligned(tmp_path: Path, area: Path, cli: CLI) -> None:
    playbook = write_playbook(
        tmp_path,
        "name: Names\narea: area\nvars: {days: 90}\npost_treatments:\n"
        "  - name: keep {{ days }} days\n"
        "    purge_old_files: {paths: [archives], older_than_days: 1}\n"
        "    tags: [housekeeping]\n"
        "  - save_report: {}\n",
    )
    out = cli("list-tasks", playbook, "-e", "days=30").out.splitlines()
    assert out[1:] == [
        "  post_treatments[0]  purge_old_files  keep 30 days  tags: housekeeping",
        "  post_treatments[1]  save_report      save_report   tags: -",
    ]


def test_validate_counts_in_words(tmp_path: Path, area: Path, cli: CLI) -> None:
    playbook = write_playbook(tmp_path, HOUSEKEEPING)
    assert cli("validate", playbook).out == f"ok  {playbook}  (0 sync steps, 1 post-treatment)\n"


def test_validate_warns_of_an_area_this_machine_lacks(tmp_path: Path, cli: CLI) -> None:
    """The playbook is valid (it may be checked away from the server), but a run here
    would stop: validate says so on stderr and still exits 0."""
    playbook = write_playbook(tmp_path, HOUSEKEEPING)
    result = cli("validate", playbook)
    assert result.code == 0
    assert result.out == f"ok  {playbook}  (0 sync steps, 1 post-treatment)\n"
    assert result.err == (
        f"postsync: warning: {playbook}: the area {tmp_path / 'area'} is not a directory on"
        " this machine: a run here would stop before any step\n"
    )
    (tmp_path / "area").mkdir()
    assert cli("validate", playbook).err == ""
