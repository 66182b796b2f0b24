"""The run record: what the sync did, saved under AREA/.postsync/runs/RUN_ID.json.

It is the boundary between sync and post-treatments (`postsync post RECORD`). Each
control file's report lines are in a file beside it (RUN_ID/NNN_NAME.report), so a
million-line file never has to be held in memory.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import PlaybookError, Problem
from runner.fsutil import atomic_write, remove_temporaries
from runner.schema import SCHEMA_URI
from runner.secrets import redact

if TYPE_CHECKING:
    from runner.context import RunContext
    from runner.engine import RunResult

RECORD_VERSION = 1

_COUNT = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}


def record_schema() -> dict[str, Any]:
    failed_line = {
        "type": "object",
        "required": ["number", "raw", "text", "message"],
        "additionalProperties": False,
        "properties": {
            "number": {"type": "integer", "minimum": 1},
            "raw": {**_STR, "description": "the line's bytes (terminator included), base64"},
            "text": {**_STR, "description": "the line decoded, for reading"},
            "message": _STR,
        },
    }
    control_file = {
        "type": "object",
        "required": [
            "command",
            "path",
            "size",
            "sha256",
            "encoding",
            "separator",
            "bom",
            "header",
            "lines",
            "failed_lines",
            "processed_courses",
            "report",
            "error",
        ],
        "additionalProperties": False,
        "properties": {
            "command": _STR,
            "path": {**_STR, "description": "absolute path of the control file"},
            "size": _COUNT,
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "encoding": _STR,
            "separator": _STR,
            "bom": {"type": "boolean"},
            "header": {**_STR, "description": "the header line's bytes, base64"},
            "lines": {
                "type": "object",
                "required": ["total", "changed", "unchanged", "failed"],
                "additionalProperties": False,
                "properties": dict.fromkeys(("total", "changed", "unchanged", "failed"), _COUNT),
            },
            "failed_lines": {"type": "array", "items": failed_line},
            "processed_courses": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "key"],
                    "additionalProperties": False,
                    "properties": {"id": {"type": "integer"}, "key": _STR},
                },
            },
            "report": {
                "type": ["string", "null"],
                "description": "the report lines' file, relative to the record's directory",
            },
            "error": {"type": ["string", "null"], "description": "why the file was rejected"},
        },
    }
    return {
        "$schema": SCHEMA_URI,
        "$id": "urn:postsync:schema:record",
        "title": "postsync run record",
        "type": "object",
        "required": [
            "version",
            "run_id",
            "playbook",
            "name",
            "check",
            "started",
            "finished",
            "area",
            "steps",
            "control_files",
        ],
        "additionalProperties": False,
        "properties": {
            "version": {"const": RECORD_VERSION},
            "run_id": _STR,
            "playbook": _STR,
            "name": _STR,
            "check": {"type": "boolean"},
            "started": {**_STR, "format": "date-time"},
            "finished": {"type": ["string", "null"], "format": "date-time"},
            "area": _STR,
            "steps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "kind", "section", "status"],
                    "additionalProperties": False,
                    "properties": {
                        "name": _STR,
                        "kind": _STR,
                        "section": _STR,
                        "status": _STR,
                        "detail": _STR,
                    },
                },
            },
            "control_files": {"type": "array", "items": control_file},
        },
    }


def build_record(run: RunContext, result: RunResult | None, *, finished: bool) -> dict[str, Any]:
    import base64

    files = []
    for f in run.files:
        files.append(
            {
                "command": f.command,
                "path": str(f.path),
                "size": f.size,
                "sha256": f.sha256,
                "encoding": f.encoding,
                "separator": f.separator,
                "bom": f.bom,
                "header": base64.b64encode(f.header).decode("ascii"),
                "lines": {
                    "total": f.lines,
                    "changed": f.changed,
                    "unchanged": f.unchanged,
                    "failed": len(f.failed),
                },
                "failed_lines": [line.as_json(f.encoding) for line in f.failed],
                "processed_courses": [{"id": i, "key": k} for i, k in sorted(f.courses.items())],
                "report": str(f.report.relative_to(run.run_dir.parent)) if f.report else None,
                "error": f.error,
            }
        )
    steps = run.prior_steps + (
        []
        if result is None
        else [
            {
                "name": s.name,
                "kind": s.step.kind,
                "section": s.step.section,
                "status": s.status,
                "detail": s.error or s.detail,
            }
            for s in result.steps
        ]
    )
    return {
        "version": RECORD_VERSION,
        "run_id": run.run_id,
        "playbook": str(run.playbook.file),
        "name": run.playbook.name,
        "check": run.check,
        "started": run.now.isoformat(),
        "finished": datetime.now(run.now.tzinfo).isoformat() if finished else None,
        "area": str(run.area),
        "steps": steps,
        "control_files": files,
    }


def record_path(run: RunContext) -> Path:
    return run.run_dir.parent / f"{run.run_id}.json"


def save_record(run: RunContext, result: RunResult | None, *, finished: bool) -> Path:
    path = record_path(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = redact(json.dumps(build_record(run, result, finished=finished), ensure_ascii=False))
    atomic_write(path, data.encode("utf-8") + b"\n")
    return path


def prune_records(runs_dir: Path, keep_days: int, keep: str) -> int:
    """Remove records (and their report directories) older than `keep_days`."""
    if not runs_dir.is_dir():
        return 0
    remove_temporaries(runs_dir)
    cutoff = time.time() - keep_days * 86400
    removed = 0
    for entry in os.scandir(runs_dir):
        if entry.name.startswith(keep) or entry.is_symlink():
            continue
        if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)
        removed += 1
    return removed


@dataclass(frozen=True)
class LoadedRecord:
    file: Path
    data: dict[str, Any]

    def problem(self, key: str, message: str) -> Problem:
        return Problem(str(self.file), 1, 1, key, message)


_SAMPLE = 3


def _sample(data: Any) -> Any:
    """The record's first control files, their long lists cut to a few entries, for the
    schema (a record of a million-line file lists many thousands of failed lines; a
    malformed entry further on is caught when the record is read: `outcomes`)."""
    if not isinstance(data, dict) or not isinstance(data.get("control_files"), list):
        return data
    files = []
    for entry in data["control_files"][:_SAMPLE]:
        if isinstance(entry, dict):
            entry = dict(entry)
            for key in ("failed_lines", "processed_courses"):
                if isinstance(entry.get(key), list):
                    entry[key] = entry[key][:_SAMPLE]
        files.append(entry)
    return {**data, "control_files": files}


@dataclass
class _Problem:
    path: list[Any]
    message: str


def _check_rest(data: dict[str, Any]) -> list[_Problem]:
    """The control files beyond the schema's sample: the same keys (their values are
    checked as they are read back)."""
    files = data["control_files"]
    if len(files) <= _SAMPLE:
        return []
    keys = set(files[0])
    return [
        _Problem(["control_files", i], "not a control file entry of this record version")
        for i, entry in enumerate(files[_SAMPLE:], start=_SAMPLE)
        if not isinstance(entry, dict) or set(entry) != keys
    ][:10]


def load_record(path: Path) -> LoadedRecord:
    """A saved run record, validated against its schema; PlaybookError (exit 4) if not."""
    from jsonschema import Draft202012Validator

    shown = str(path)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise PlaybookError([Problem(shown, 1, 1, "", "no such run record")]) from None
    except OSError as exc:
        raise PlaybookError([Problem(shown, 1, 1, "", f"cannot read: {exc.strerror}")]) from None
    except ValueError as exc:
        line, col = getattr(exc, "lineno", 1), getattr(exc, "colno", 1)
        raise PlaybookError([Problem(shown, line, col, "", f"not JSON: {exc}")]) from None
    errors = sorted(
        Draft202012Validator(record_schema()).iter_errors(_sample(data)),
        key=lambda e: list(e.path),
    )
    if not errors:
        errors = _check_rest(data)
    if errors:
        raise PlaybookError(
            [
                Problem(
                    shown,
                    1,
                    1,
                    ".".join(str(p) for p in e.path),
                    f"{e.message} (not a postsync run record of this version)",
                )
                for e in errors[:10]
            ]
        )
    return LoadedRecord(path.absolute(), data)
