"""The published schema is the one the runner validates with, and names the registry."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from runner.playbook import registry
from runner.playbook.schema import playbook_schema
from runner.sync import SYNC_COMMANDS
from runner.treatments import TREATMENTS
from tests.conftest import CLI

ROOT = Path(__file__).parent.parent
PUBLISHED = ROOT / "schemas" / "playbook.schema.json"


def test_published_schema_is_up_to_date(cli: CLI) -> None:
    result = cli("schema", "playbook")
    assert result.code == 0
    assert json.loads(result.out) == json.loads(PUBLISHED.read_text()), (
        "regenerate it: postsync schema playbook > schemas/playbook.schema.json"
    )


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(json.loads(PUBLISHED.read_text()))


def test_treatment_names_are_the_registry() -> None:
    schema = json.loads(PUBLISHED.read_text())
    item = schema["$defs"]["post_treatment"]
    named = {k for k in item["properties"] if k not in ("name", "when", "tags", "ignore_errors")}
    assert named == set(TREATMENTS)
    assert {s["required"][0] for s in item["oneOf"]} == set(TREATMENTS)


def test_sync_command_names_are_the_registry() -> None:
    step = json.loads(PUBLISHED.read_text())["$defs"]["sync_step"]
    assert set(step["properties"]["command"]["enum"]) == set(SYNC_COMMANDS)


def test_implementations_are_the_registry_in_its_order() -> None:
    """The schema is built from the registry; the engine runs the implementations."""
    assert list(TREATMENTS) == list(registry.TREATMENTS)
    assert list(SYNC_COMMANDS) == list(registry.COMMANDS)


@pytest.mark.parametrize("name", sorted(TREATMENTS))
def test_every_treatment_is_strict_and_documented(name: str) -> None:
    schema = registry.TREATMENTS[name].schema
    assert schema["additionalProperties"] is False
    doc = type(TREATMENTS[name]).__doc__ or ""
    assert "Example:" in doc
    for param in schema["properties"]:
        assert re.search(rf"^\s+{param} \(", doc, re.M), f"{name}: {param} undocumented"


EXAMPLES = sorted((ROOT / "playbooks").glob("*.yml"))


@pytest.mark.parametrize("playbook", EXAMPLES, ids=lambda p: p.name)
def test_example_playbooks_validate_and_carry_the_modeline(playbook: Path, cli: CLI) -> None:
    assert playbook.read_text().startswith(
        "# yaml-language-server: $schema=../schemas/playbook.schema.json\n"
    )
    result = cli("validate", playbook)
    assert result.code == 0, result.err
    assert playbook_schema()["$id"] == json.loads(PUBLISHED.read_text())["$id"]


def test_readme_reference_is_the_docstrings() -> None:
    """README's treatment and sync references are the code's docstrings."""
    from tests.readme import README, render

    text = README.read_text()
    assert render(text) == text, "regenerate it: python -m tests.readme"
    for name in [*TREATMENTS, *SYNC_COMMANDS]:
        assert f"### {name}\n\n```text\n" in text


def test_published_record_schema_is_up_to_date(cli: CLI) -> None:
    result = cli("schema", "record")
    assert json.loads(result.out) == json.loads(
        (ROOT / "schemas" / "record.schema.json").read_text()
    )
    Draft202012Validator.check_schema(json.loads(result.out))


def test_published_journal_schema_is_up_to_date(cli: CLI) -> None:
    result = cli("schema", "journal")
    assert json.loads(result.out) == json.loads(
        (ROOT / "schemas" / "journal.schema.json").read_text()
    ), "regenerate it: postsync schema journal > schemas/journal.schema.json"
    Draft202012Validator.check_schema(json.loads(result.out))
