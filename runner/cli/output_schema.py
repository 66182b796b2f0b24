"""The JSON Schema of `--output json` (one document) and `--output jsonl` (events).

Published as schemas/output.schema.json (`postsync schema output`); a document or any
event line is valid against it. tests/test_output_schema.py runs real commands and
validates what they print, so this stays what runner/cli/output.py writes.
"""

from __future__ import annotations

from typing import Any

from runner.core.schemas import SCHEMA_URI

#: a step's status; `warning`: a sync step that changed nothing while lines of its files
#: failed (the run goes on, and exits 2)
STATUSES = ["ok", "changed", "warning", "skipped", "failed"]
SECTIONS = ["sync", "post_treatments"]


def _obj(properties: dict[str, Any], *, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": [k for k in properties if k not in optional],
        "additionalProperties": False,
    }


def _const(value: str) -> dict[str, Any]:
    return {"const": value}


TEXT = {"type": "string"}
COUNT = {"type": "integer", "minimum": 0}
TIME = {"type": "string", "format": "date-time"}
EXIT = {"type": "integer", "enum": [0, 1, 2, 3, 4, 5, 6, 130, 143]}


def output_schema() -> dict[str, Any]:
    recap = _obj(
        {
            "ok": COUNT,
            "changed": COUNT,
            "warning": {"description": "steps that ended warning", **COUNT},
            "skipped": COUNT,
            "failed": COUNT,
            "ignored": COUNT,
            "lines_ok": COUNT,
            "lines_failed": COUNT,
        }
    )
    item = _obj(
        {
            "action": {"description": "what was (or would be) done, e.g. archive", **TEXT},
            "target": {"description": "the file, group... it was done to", **TEXT},
            "detail": TEXT,
        }
    )
    step = _obj(
        {
            "name": TEXT,
            "kind": {"description": "sync command or treatment", **TEXT},
            "section": {"enum": SECTIONS},
            "status": {"enum": STATUSES},
            "ignored": {"description": "failed, but the step has ignore_errors", "type": "boolean"},
            "detail": TEXT,
            "started": {
                "description": "when the step started (null: it did not)",
                "anyOf": [TIME, {"type": "null"}],
            },
            "duration_s": {"description": "how long the step took, in seconds", "type": "number"},
            "items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
        }
    )
    problem = _obj(
        {
            "file": TEXT,
            "line": COUNT,
            "column": COUNT,
            "path": {"description": "where in the playbook, e.g. post_treatments[2].dest", **TEXT},
            "message": TEXT,
        },
        optional=("file", "line", "column", "path"),
    )
    run_id = {"description": "also the run record's name under .postsync/runs/", **TEXT}
    problems = {
        "description": (
            "what is wrong outside the steps, found before they ran (e.g. a --metrics-file"
            " that cannot be written): the run goes on, and exits 3"
        ),
        "type": "array",
        "items": TEXT,
    }
    cleaned = {
        "description": (
            "what a killed run of the area left (its temporary files, its run directory"
            " without a record), removed before the steps (a preview: would be)"
        ),
        "type": "array",
        "items": {"$ref": "#/$defs/item"},
    }
    document = _obj(
        {
            "run_id": run_id,
            "playbook": TEXT,
            "name": TEXT,
            "check": {"type": "boolean"},
            "started": TIME,
            "finished": TIME,
            "exit_code": EXIT,
            "interrupted": {"type": "boolean"},
            "recap": {"$ref": "#/$defs/recap"},
            "record_error": {"type": ["string", "null"]},
            "problems": problems,
            "cleaned": cleaned,
            "steps": {"type": "array", "items": {"$ref": "#/$defs/step"}},
        }
    )
    aborted = _obj(
        {
            "run_id": {"type": "null"},
            "check": {"type": "boolean"},
            "exit_code": EXIT,
            "errors": {"type": "array", "items": {"$ref": "#/$defs/problem"}, "minItems": 1},
        }
    )

    def event(name: str, fields: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
        when = {"description": "when the event happened", **TIME}
        return _obj({"event": _const(name), "time": when, **fields}, optional=optional)

    events = [
        event(
            "start",
            {
                "run_id": run_id,
                "playbook": TEXT,
                "name": TEXT,
                "check": {"type": "boolean"},
                "started": TIME,
                "cleaned": cleaned,
                "problems": problems,
            },
        ),
        event("step_start", {"name": TEXT, "kind": TEXT, "section": {"enum": SECTIONS}}),
        event("item", {"step": TEXT, **item["properties"]}),
        event("step", dict(step["properties"])),
        event(
            "end",
            {
                "run_id": run_id,
                "check": {"type": "boolean"},
                "exit_code": EXIT,
                "interrupted": {"type": "boolean"},
                "recap": {"$ref": "#/$defs/recap"},
            },
        ),
        event(
            "end",
            {
                "run_id": {"type": "null"},
                "check": {"type": "boolean"},
                "exit_code": EXIT,
                "errors": aborted["properties"]["errors"],
            },
        ),
    ]
    return {
        "$schema": SCHEMA_URI,
        "$id": "urn:postsync:schema:output",
        "title": "postsync output",
        "description": (
            "What `postsync run|post --output json` prints (one document: a run, or an"
            " aborted run with its errors), and each line `--output jsonl` prints (an"
            " event: start, step_start, item, step, end)."
        ),
        "oneOf": [
            {"$ref": "#/$defs/document"},
            {"$ref": "#/$defs/aborted"},
            {"$ref": "#/$defs/event"},
        ],
        "$defs": {
            "recap": recap,
            "item": item,
            "step": step,
            "problem": problem,
            "document": document,
            "aborted": aborted,
            "event": {"oneOf": events},
        },
    }
