"""`--output json` and `--output jsonl` print what schemas/output.schema.json describes."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, ValidationError

from runner.cli.output_schema import output_schema
from tests.conftest import CLI

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = ROOT / "schemas" / "output.schema.json"
VALIDATOR = Draft202012Validator(
    output_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER
)


def test_published_output_schema_is_up_to_date(cli: CLI) -> None:
    result = cli("schema", "output")
    assert result.code == 0
    assert result.out == PUBLISHED.read_text(), (
        "regenerate it: postsync schema output > schemas/output.schema.json"
    )
    Draft202012Validator.check_schema(json.loads(result.out))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo, built and run once, its enrolment file put back for more runs."""
    from runner.cli.main import main

    directory = tmp_path_factory.mktemp("output") / "demo"
    assert main(["demo", str(directory)]) == 0
    return directory


def fresh(demo: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "demo"
    shutil.copytree(demo, copy, symlinks=True)
    (archive,) = (copy / "area" / "archives").glob("*_enrols.csv")
    shutil.copy(archive, copy / "area" / "enrols.csv")
    return copy


@pytest.mark.parametrize("check", [False, True])
def test_json_document_of_a_run(demo: Path, tmp_path: Path, cli: CLI, check: bool) -> None:
    copy = fresh(demo, tmp_path)
    args = ["run", copy / "nightly.yml", "--output", "json"] + (["--check"] if check else [])
    result = cli(*args)
    assert result.code == 2, result.err  # the demo's file fails a few lines on purpose
    document = json.loads(result.out)
    VALIDATOR.validate(document)
    assert document["check"] is check
    assert any(step["items"] for step in document["steps"])
    started = [datetime.fromisoformat(step["started"]) for step in document["steps"]]
    assert started == sorted(started) and started[0] >= datetime.fromisoformat(document["started"])
    assert all(step["duration_s"] >= 0 for step in document["steps"])


def test_jsonl_events_of_a_run(demo: Path, tmp_path: Path, cli: CLI) -> None:
    copy = fresh(demo, tmp_path)
    result = cli("run", copy / "nightly.yml", "--output", "jsonl")
    events = [json.loads(line) for line in result.out.splitlines()]
    for event in events:
        VALIDATOR.validate(event)
    kinds = {e["event"] for e in events}
    assert kinds == {"start", "step_start", "item", "step", "end"}
    assert events[0]["event"] == "start" and events[-1]["event"] == "end"
    times = [datetime.fromisoformat(e["time"]) for e in events]
    assert times == sorted(times) and all(t.tzinfo is not None for t in times)


@pytest.mark.parametrize("output", ["json", "jsonl"])
def test_a_sync_step_whose_lines_all_failed_is_a_warning(
    tmp_path: Path, cli: CLI, output: str
) -> None:
    assert cli("db", "init", f"sqlite:///{tmp_path / 'moodle.db'}", "--demo").code == 0
    (tmp_path / "area").mkdir()
    (tmp_path / "area" / "enrols.csv").write_text("cmd;cid;uid;rolename\nadd;X;U9999;student\n")
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        "name: p\narea: area\ndatabase: sqlite:///moodle.db\n"
        "sync:\n  - command: enrolments\n    file: enrols.csv\n"
    )
    result = cli("run", playbook, "--output", output)
    assert result.code == 2, result.err  # failed lines: exit 2, as ever
    documents = (
        [json.loads(line) for line in result.out.splitlines()]
        if output == "jsonl"
        else [json.loads(result.out)]
    )
    for document in documents:
        VALIDATOR.validate(document)
    steps = [d for d in documents if d.get("event") == "step"] or documents[-1]["steps"]
    assert [step["status"] for step in steps] == ["warning"]
    assert documents[-1]["recap"]["warning"] == 1
    assert documents[-1]["recap"]["failed"] == 0


@pytest.mark.parametrize("output", ["json", "jsonl"])
def test_aborted_run(tmp_path: Path, cli: CLI, output: str) -> None:
    playbook = tmp_path / "bad.yml"
    playbook.write_text("name: bad\narea: area\npost_treatments:\n  - archive_control_files: 3\n")
    result = cli("run", playbook, "--output", output)
    assert result.code == 4
    (line,) = result.out.strip().splitlines() if output == "jsonl" else [result.out]
    document = json.loads(line)
    VALIDATOR.validate(document)
    assert document["errors"][0]["line"] == 4


def test_a_locked_area_is_an_aborted_run(tmp_path: Path, cli: CLI) -> None:
    from runner.engine.lock import area_lock

    area = tmp_path / "area"
    area.mkdir()
    playbook = tmp_path / "p.yml"
    playbook.write_text("name: p\narea: area\npost_treatments:\n  - save_report: {}\n")
    with area_lock(area, "another-run"):
        result = cli("run", playbook, "--output", "json")
    assert result.code == 6
    VALIDATOR.validate(json.loads(result.out))


@pytest.mark.parametrize(
    "broken",
    [
        {"run_id": None, "check": False, "exit_code": 4, "errors": []},
        {"event": "start", "run_id": "x"},
        {"event": "item", "step": "s", "action": "archive", "target": "t"},
        {
            "event": "end",
            "run_id": "x",
            "check": False,
            "exit_code": 9,
            "interrupted": False,
            "recap": {},
        },
    ],
)
def test_schema_rejects_what_postsync_never_prints(broken: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        VALIDATOR.validate(broken)
