"""The engine through `postsync run`: statuses, when, tags, ignore_errors, check, output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.engine.results import RunOptions, selected
from tests.conftest import CLI, HOUSEKEEPING, make_file, snapshot, write_playbook

TWO_STEPS = """\
name: Two steps
area: area
vars:
  days: 90
post_treatments:
  - name: purge archives
    purge_old_files: {paths: [archives], older_than_days: 90}
    tags: [housekeeping]
  - name: purge reports
    purge_old_files: {paths: [reports], older_than_days: 30, patterns: ["*.txt"]}
    tags: [reports]
"""


@pytest.fixture
def stocked(area: Path) -> Path:
    make_file(area / "archives" / "a-old.csv", days=100)
    make_file(area / "archives" / "b-old.csv", days=95)
    make_file(area / "archives" / "new.csv", days=1)
    make_file(area / "reports" / "r-old.txt", days=40)
    make_file(area / "reports" / "r-old.csv", days=40)
    return area


def test_run_changes_then_second_run_is_ok(tmp_path: Path, stocked: Path, cli: CLI) -> None:
    playbook = write_playbook(tmp_path, TWO_STEPS)
    first = cli("run", playbook)
    assert first.code == 0, first.err
    assert first.out == (
        "CHANGED  purge archives  (2 files older than 90 days)\n"
        "    delete archives/a-old.csv  (100 days old)\n"
        "    delete archives/b-old.csv  (95 days old)\n"
        "CHANGED  purge reports  (1 file older than 30 days)\n"
        "    delete reports/r-old.txt  (40 days old)\n"
        "RECAP ok=0 changed=2 skipped=0 failed=0 | lines: 0 ok, 0 failed\n"
    )
    second = cli("run", playbook)
    assert second.code == 0
    assert second.out == (
        "OK       purge archives  (nothing older than 90 days)\n"
        "OK       purge reports  (nothing older than 30 days)\n"
        "RECAP ok=2 changed=0 skipped=0 failed=0 | lines: 0 ok, 0 failed\n"
    )


def test_check_prints_the_run_lines_and_changes_nothing(
    tmp_path: Path, stocked: Path, cli: CLI
) -> None:
    playbook = write_playbook(tmp_path, TWO_STEPS)
    before = snapshot(tmp_path, own_state=False)
    preview = cli("run", playbook, "--check")
    assert preview.code == 0
    assert snapshot(tmp_path, own_state=False) == before
    real = cli("run", playbook)
    lines = preview.out.splitlines()
    assert lines[0].startswith("PREVIEW  --check: nothing is changed")
    assert lines[-1].endswith("  (preview: nothing changed)")
    lines[-1] = lines[-1].removesuffix("  (preview: nothing changed)")
    assert lines[1:] == real.out.splitlines()


def test_diff_lists_deletions(tmp_path: Path, stocked: Path, cli: CLI) -> None:
    result = cli("run", write_playbook(tmp_path, TWO_STEPS), "--check", "--diff")
    assert "--- archives/a-old.csv\n+++ /dev/null\n@@ deleted: 2 bytes, modified " in result.out


def test_json_output(tmp_path: Path, stocked: Path, cli: CLI) -> None:
    result = cli("run", write_playbook(tmp_path, TWO_STEPS), "--output", "json", "--check")
    doc = json.loads(result.out)
    assert doc["check"] is True
    assert doc["exit_code"] == 0
    assert doc["run_id"]
    assert doc["recap"] == {
        "ok": 0,
        "changed": 2,
        "warning": 0,
        "skipped": 0,
        "failed": 0,
        "ignored": 0,
        "lines_ok": 0,
        "lines_failed": 0,
    }
    assert [s["kind"] for s in doc["steps"]] == ["purge_old_files", "purge_old_files"]
    assert doc["steps"][0]["items"][0] == {
        "action": "delete",
        "target": "archives/a-old.csv",
        "detail": "100 days old",
    }
    assert (stocked / "archives" / "a-old.csv").exists()


def test_jsonl_events(tmp_path: Path, stocked: Path, cli: CLI) -> None:
    result = cli("run", write_playbook(tmp_path, TWO_STEPS), "--output", "jsonl")
    events = [json.loads(line) for line in result.out.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds == [
        "start",
        "step_start",
        "item",
        "item",
        "step",
        "step_start",
        "item",
        "step",
        "end",
    ]
    assert events[-1]["exit_code"] == 0
    assert events[-1]["recap"]["changed"] == 2


def test_json_output_for_an_invalid_playbook(tmp_path: Path, area: Path, cli: CLI) -> None:
    playbook = write_playbook(tmp_path, "name: x\narea: area\nbogus: 1\n")
    result = cli("run", playbook, "--output", "json")
    assert result.code == 4
    doc = json.loads(result.out)
    assert doc["exit_code"] == 4
    assert doc["errors"][0]["line"] == 3
    assert doc["errors"][0]["path"] == "bogus"


def test_tags_select_steps(tmp_path: Path, stocked: Path, cli: CLI) -> None:
    playbook = write_playbook(tmp_path, TWO_STEPS)
    result = cli("run", playbook, "--tags", "housekeeping", "--check")
    assert "purge archives" in result.out
    assert "purge reports" not in result.out
    result = cli("run", playbook, "--skip-tags", "housekeeping", "--check")
    assert "purge archives" not in result.out
    assert "purge reports" in result.out


@pytest.mark.parametrize(
    "tags,only,skip,expected",
    [
        ((), set(), set(), True),
        ((), {"a"}, set(), False),
        (("a",), {"a"}, set(), True),
        (("a",), set(), {"a"}, False),
        (("always",), {"b"}, set(), True),
        (("always",), {"b"}, {"always"}, False),
        (("never",), set(), set(), False),
        (("never", "x"), {"x"}, set(), True),
        (("a",), {"all"}, set(), True),
    ],
)
def test_tag_rules(tags: tuple[str, ...], only: set[str], skip: set[str], expected: bool) -> None:
    assert selected(tags, frozenset(only), frozenset(skip)) is expected


def test_list_tasks_marks_selection(tmp_path: Path, area: Path, cli: CLI) -> None:
    result = cli("list-tasks", write_playbook(tmp_path, TWO_STEPS), "--tags", "reports")
    lines = result.out.splitlines()
    assert result.code == 0
    assert lines[1].startswith("- post_treatments[0]")
    assert "tags: housekeeping" in lines[1]
    assert lines[2].startswith("  post_treatments[1]")


def test_when_false_skips(tmp_path: Path, stocked: Path, cli: CLI) -> None:
    playbook = write_playbook(
        tmp_path, TWO_STEPS.replace("    tags: [housekeeping]", "    when: run.failed_lines > 0")
    )
    result = cli("run", playbook)
    assert "SKIPPED  purge archives  (when: run.failed_lines > 0 is false)" in result.out
    assert (stocked / "archives" / "a-old.csv").exists()
    assert "RECAP ok=0 changed=1 skipped=1 failed=0" in result.out


FAILING = """\
name: Failing
area: area
post_treatments:
  - name: not a directory
    purge_old_files: {paths: [afile], older_than_days: 1}
IGNORE
  - name: purge archives
    purge_old_files: {paths: [archives], older_than_days: 90}
"""


def test_failed_step_exits_3_and_stops(tmp_path: Path, stocked: Path, cli: CLI) -> None:
    make_file(stocked / "afile")
    result = cli("run", write_playbook(tmp_path, FAILING.replace("IGNORE\n", "")))
    assert result.code == 3
    assert "FAILED   not a directory  (afile is not a directory)" in result.out
    assert "purge archives" not in result.out
    assert (stocked / "archives" / "a-old.csv").exists()


def test_ignore_errors_goes_on(tmp_path: Path, stocked: Path, cli: CLI) -> None:
    make_file(stocked / "afile")
    body = FAILING.replace("IGNORE", "    ignore_errors: true")
    result = cli("run", write_playbook(tmp_path, body))
    assert result.code == 0
    assert "FAILED   not a directory  (afile is not a directory (ignored))" in result.out
    assert "CHANGED  purge archives" in result.out
    assert "RECAP ok=0 changed=1 skipped=0 failed=1" in result.out


def test_missing_area_exits_3(tmp_path: Path, cli: CLI) -> None:
    result = cli("run", write_playbook(tmp_path, HOUSEKEEPING))
    assert result.code == 3
    assert f"area {tmp_path / 'area'} does not exist" in result.err
    assert not (tmp_path / "area").exists()


def test_relative_area_is_relative_to_the_playbook(
    tmp_path: Path, stocked: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    playbook = write_playbook(tmp_path, HOUSEKEEPING)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = cli("run", playbook)
    assert result.code == 0
    assert "delete archives/a-old.csv" in result.out
    assert (stocked / ".postsync" / "lock").exists()


TEMPLATED = """\
name: Templated
area: "{{ base }}"
timezone: Pacific/Kiritimati
vars:
  base: area
  dir: "{{ sub }}"
  sub: "arch{{ 'ives' }}"
  year: "{{ now | strftime('%z') }}"
post_treatments:
  - name: "purge {{ dir }} {{ year }} {{ env.POSTSYNC_TEST_MARK | default('nomark') }}"
    purge_old_files: {paths: ["{{ sub }}"], older_than_days: 30}
"""


def test_vars_render_in_order_and_e_overrides(
    tmp_path: Path, stocked: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    playbook = write_playbook(tmp_path, TEMPLATED)
    # `dir` uses `sub` before it is defined: a located error
    result = cli("run", playbook)
    assert result.code == 4
    assert "playbook.yml:6:8: vars.dir: undefined variable 'sub'" in result.err
    # -e defines it, and overrides the later definition
    monkeypatch.setenv("POSTSYNC_TEST_MARK", "marked")
    result = cli("run", playbook, "-e", "sub=reports", "--check")
    assert result.code == 0, result.err
    assert "CHANGED  purge reports +1400 marked  (2 files older than 30 days)" in result.out
    assert "delete reports/r-old.txt" in result.out
    assert "delete archives" not in result.out


def test_extra_vars_from_a_file(tmp_path: Path, stocked: Path, cli: CLI) -> None:
    body = TEMPLATED.replace('  dir: "{{ sub }}"\n', "").replace("{{ dir }}", "dir")
    playbook = write_playbook(tmp_path, body)
    (tmp_path / "vars.yml").write_text("sub: reports\n")
    result = cli("run", playbook, "-e", f"@{tmp_path / 'vars.yml'}", "--check")
    assert result.code == 0, result.err
    assert "delete reports/r-old.txt" in result.out


def test_undefined_attribute_at_render_time(tmp_path: Path, stocked: Path, cli: CLI) -> None:
    body = HOUSEKEEPING.replace("paths: [archives]", 'paths: ["{{ env.POSTSYNC_NOPE_X }}"]')
    result = cli("run", write_playbook(tmp_path, body))
    assert result.code == 4
    assert (
        "playbook.yml:6:15: post_treatments[0].purge_old_files.paths[0]: undefined"
        " variable: environment variable 'POSTSYNC_NOPE_X' is not set (set it, or give a"
        " default: env.POSTSYNC_NOPE_X | default('...'))"
    ) in result.err


def test_sandbox_violation_at_render_time_is_exit_4(
    tmp_path: Path, stocked: Path, cli: CLI
) -> None:
    body = HOUSEKEEPING.replace("paths: [archives]", 'paths: ["{{ now.replace.__self__ }}"]')
    result = cli("run", write_playbook(tmp_path, body))
    assert result.code == 4
    assert "unsafe template refused by the sandbox" in result.err
    assert "Traceback" not in result.err


def test_exit_code_precedence(tmp_path: Path, area: Path) -> None:
    """Failed lines give 2 unless a step failed (3); an interruption wins (130)."""
    from runner.engine.prepare import build_context
    from runner.engine.results import RunResult, StepResult
    from runner.playbook.model import load_playbook
    from runner.record.model import FailedLine, FileOutcome

    playbook = load_playbook(write_playbook(tmp_path, FAILING.replace("IGNORE\n", "")))
    result = RunResult(build_context(playbook, RunOptions()))
    assert result.exit_code == 0
    outcome = FileOutcome("enrolments", tmp_path / "e.csv", "utf-8", ",")
    outcome.failed = [FailedLine(n, b"x\n", "no such user") for n in (2, 3, 4)]
    result.run.ledger.add_outcome(outcome)
    assert result.run.ledger.failed_lines == 3
    assert result.exit_code == 2
    result.steps.append(StepResult(playbook.post_treatments[0], status="failed"))
    assert result.exit_code == 3
    result.interrupted = True
    assert result.exit_code == 130


STEP_FAILED = """\
name: Step failed
area: area
post_treatments:
  - name: purge
    purge_old_files: {paths: [archives], older_than_days: 30}
    ignore_errors: true
  - name: alert
    when: run.step_failed
    purge_old_files: {paths: [other], older_than_days: 30}
"""


def test_when_run_step_failed_is_true_only_once_a_step_failed(
    tmp_path: Path, area: Path, cli: CLI
) -> None:
    playbook = write_playbook(tmp_path, STEP_FAILED)
    assert cli("validate", playbook).code == 0
    calm = cli("run", playbook)
    assert "SKIPPED  alert  (when: run.step_failed is false)" in calm.out, calm.out
    (area / "archives").write_text("a file where a directory should be")
    stormy = cli("run", playbook)
    assert "FAILED   purge" in stormy.out and "(ignored)" in stormy.out, stormy.out
    assert "OK       alert" in stormy.out, stormy.out
