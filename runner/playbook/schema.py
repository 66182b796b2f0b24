"""The playbook JSON Schema, built from the registry, and located validation errors."""

from __future__ import annotations

import ast
import difflib
import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from runner.core.errors import Problem
from runner.core.schemas import SCHEMA_URI
from runner.playbook.registry import COMMANDS, TEMPLATE_PATTERN, TREATMENTS, templated_integer
from runner.playbook.source import SourceMap

STEP_KEYS = ("name", "when", "tags", "ignore_errors")

_STEP_PROPERTIES: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "description": "Shown in the output."},
    "when": {
        "type": ["string", "boolean"],
        "description": "Jinja expression; the step runs only when it is true, "
        "e.g. `run.failed_lines > 0`.",
    },
    "tags": {
        "type": ["string", "array"],
        "items": {"type": "string", "minLength": 1},
        "description": "Select steps with --tags / --skip-tags (`always`, `never` as in Ansible).",
    },
    "ignore_errors": {
        "type": "boolean",
        "description": "A failure of this step does not fail the run.",
    },
}


def _sync_step() -> dict[str, Any]:
    commands = sorted(COMMANDS)
    properties: dict[str, Any] = {
        "command": {"enum": commands, "description": "The tool_sync control-file kind."},
        "file": {
            "type": "string",
            "minLength": 1,
            "description": "Glob relative to the area; each match is one control file.",
        },
        "encoding": {"type": "string", "minLength": 1, "default": "utf-8"},
        "separator": {"enum": [";", ",", "\t", ":"], "default": ";"},
        "include_retry_files": {
            "type": "boolean",
            "default": False,
            "description": "Also read the retry files of the step's own files: a name"
            " with a `_tryback_` part that, taken out, the pattern matches"
            " (enrols_tryback_20261204-0230.csv for enrols*.csv), before the feed's own"
            " files. min_files and max_age_hours count only the feed's own files.",
        },
        "min_files": {
            **templated_integer(0),
            "default": 0,
            "description": "Fewer of the feed's own control files (retry files not"
            " counted) than this fails the step (exit 3), applying none: a feed that did"
            " not come. 1: the feed must come. An integer, or a template rendering to one"
            ' (`"{{ 1 if nightly else 0 }}"`).',
        },
        "max_age_hours": {
            "type": ["number", "string"],
            "exclusiveMinimum": 0,
            "pattern": TEMPLATE_PATTERN,
            "description": "The newest of the feed's own control files older than this"
            " (its modification time) fails the step, applying none: a stale feed. One"
            " dated more than a minute in the future is applied with a warning (clock"
            " skew). A number, or a template rendering to one (or to nothing: no limit).",
        },
        "settle_seconds": {
            "type": "number",
            "minimum": 0,
            "default": 60,
            "description": "A control file modified less than this many seconds ago is"
            " still being written: it is left as it is for the next run (0: read at once).",
        },
        "uploader_lock": {
            "type": "string",
            "minLength": 1,
            "description": "A file the uploader creates in the area while it writes"
            " (tool_sync's alock.txt): while it is there, no file of the step is read.",
        },
        "max_line_bytes": {
            "type": "integer",
            "minimum": 1024,
            "default": 1048576,
            "description": "A line longer than this (bytes) rejects its file, nothing of"
            " it applied: a file without line ends is never read whole into memory.",
        },
        "commit_every": {
            "type": "object",
            "properties": {
                "lines": {"type": "integer", "minimum": 1},
                "seconds": {"type": "number", "exclusiveMinimum": 0},
            },
            "additionalProperties": False,
            "minProperties": 1,
            "description": "Commit each control file in chunks, each once this many"
            " lines or seconds are applied, so that no transaction holds Moodle's rows"
            " longer (by default a file is one transaction). The whole file is read and"
            " checked first (its encoding, and max_changes by a preview of it), so a"
            " rejected file still applies nothing; a run killed mid-file is resumed"
            " after its last committed chunk by the next run. Not with mode: snapshot.",
        },
        **_STEP_PROPERTIES,
    }
    branches = [
        {
            "if": {"properties": {"command": {"const": name}}, "required": ["command"]},
            "then": {"properties": dict(COMMANDS[name].schema)},
        }
        for name in commands
    ]
    step: dict[str, Any] = {
        "type": "object",
        "required": ["command", "file"],
        "properties": properties,
        "unevaluatedProperties": False,
    }
    if branches:
        step["allOf"] = branches
    return step


def _post_treatment() -> dict[str, Any]:
    names = sorted(TREATMENTS)
    return {
        "type": "object",
        "description": "Exactly one treatment key, plus optional name, when, tags, ignore_errors.",
        "properties": {
            **_STEP_PROPERTIES,
            **{name: dict(TREATMENTS[name].schema) for name in names},
        },
        "additionalProperties": False,
        "oneOf": [{"required": [name]} for name in names],
    }


def playbook_schema() -> dict[str, Any]:
    return {
        "$schema": SCHEMA_URI,
        "$id": "urn:postsync:schema:playbook",
        "title": "postsync playbook",
        "type": "object",
        "required": ["name", "area"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "area": {
                "type": "string",
                "minLength": 1,
                "description": "The command-file area (relative to the playbook's directory).",
            },
            "database": {
                "type": "string",
                "minLength": 1,
                "description": "SQLAlchemy URL; a relative SQLite path is relative to the"
                " playbook's directory.",
            },
            "database_timeouts": {
                "type": "object",
                "additionalProperties": False,
                "description": "Seconds to wait before a step fails (exit 3): to connect"
                " (a host that never answers), and for a lock another writer holds.",
                "properties": {
                    "connect": {"type": "number", "exclusiveMinimum": 0, "default": 10},
                    "lock": {"type": "number", "exclusiveMinimum": 0, "default": 30},
                },
            },
            "prefix": {"type": "string", "pattern": "^[A-Za-z0-9_]*$", "default": "mdl_"},
            "timezone": {"type": "string", "minLength": 1, "description": "IANA zone for `now`."},
            "roots": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "description": "Directories outside the area that steps may write or delete"
                " in, and object-storage prefixes (s3://bucket/prefix) archives and reports"
                " may go to.",
            },
            "storage": {
                "type": "object",
                "additionalProperties": False,
                "description": "Object storage (s3:// destinations) settings; by default"
                " they come from the AWS environment variables (AWS_ENDPOINT_URL...)."
                " Templates: use {{ env.NAME }} for secrets.",
                "properties": {
                    name: {"type": "string"}
                    for name in (
                        "endpoint_url",
                        "region",
                        "access_key_id",
                        "secret_access_key",
                        "session_token",
                    )
                },
            },
            "keep_records_days": {"type": "integer", "minimum": 1, "default": 90},
            "vars": {
                "type": "object",
                "propertyNames": {
                    "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
                    "not": {"enum": ["now", "env", "area", "run", "file"]},
                },
            },
            "sync": {"type": ["array", "null"], "items": {"$ref": "#/$defs/sync_step"}},
            "post_treatments": {
                "type": ["array", "null"],
                "items": {"$ref": "#/$defs/post_treatment"},
            },
        },
        "$defs": {"sync_step": _sync_step(), "post_treatment": _post_treatment()},
    }


_UNEXPECTED = re.compile(r"\((.*) (?:was|were) unexpected\)$", re.S)


def _known_keys(schema: dict[str, Any], instance: Any) -> list[str]:
    """The keys `schema` allows: its own, and those of the branches (a sync command's
    options) that apply to `instance` (all of them when its command is unknown)."""
    keys = list(schema.get("properties", {}))
    branches = schema.get("allOf", [])
    command = instance.get("command") if isinstance(instance, dict) else None
    consts = [b.get("if", {}).get("properties", {}).get("command", {}) for b in branches]
    known = command in [c.get("const") for c in consts]
    for branch, const in zip(branches, consts, strict=True):
        if not known or const.get("const") == command:
            keys += list(branch.get("then", {}).get("properties", {}))
    return list(dict.fromkeys(keys))


def _problems_for(error: ValidationError, smap: SourceMap) -> list[Problem]:
    path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        match = _UNEXPECTED.search(error.message)
        names = ast.literal_eval(f"({match.group(1)},)") if match else ()
        known = _known_keys(schema, error.instance)
        out = []
        for name in names:
            if name in known:
                # a known key whose value failed its own check is "unevaluated" too:
                # that check's error says what is wrong
                continue
            hint = difflib.get_close_matches(str(name), known, n=1)
            message = f"unknown key {name!r}"
            message += (
                f" (did you mean {hint[0]!r}?)"
                if hint
                else (
                    f"; allowed: {', '.join(known)}" if known else "; this takes no parameters ({})"
                )
            )
            out.append(smap.problem((*path, name), message, key=True))
        return out
    if error.validator == "required":
        match = re.match(r"^'(.*)' is a required property$", error.message)
        name = match.group(1) if match else error.message
        return [smap.problem(path, f"missing required key {name!r}")]
    subschemas: Any = error.validator_value
    if error.validator == "oneOf" and all(set(s) == {"required"} for s in subschemas):
        choices = [s["required"][0] for s in subschemas]
        found = [c for c in choices if isinstance(error.instance, dict) and c in error.instance]
        if found:
            message = f"exactly one treatment per item; found {', '.join(found)}"
        else:
            message = f"needs one treatment key, one of: {', '.join(choices)}"
        return [smap.problem(path, message)]
    if error.validator == "type" and not path:
        return [
            smap.problem(
                path,
                "a playbook is a mapping of keys (name:, area:, ...),"
                f" not a {type(error.instance).__name__}",
            )
        ]
    if "propertyNames" in error.absolute_schema_path:
        return [
            smap.problem(
                (*path, str(error.instance)),
                f"invalid name {error.instance!r}: must be an identifier"
                " and not one of now, env, area, run, file",
                key=True,
            )
        ]
    none = error.validator == "type" and error.instance is None
    if none and len(path) >= 3 and path[0] == "post_treatments":
        return [
            smap.problem(
                path, f"{path[-1]} has no value: give it {{}} (its defaults) or its parameters"
            )
        ]
    if error.validator == "pattern" and subschemas == TEMPLATE_PATTERN:
        kind = "a number" if path and path[-1] == "max_age_hours" else "an integer"
        return [
            smap.problem(
                path,
                f"{error.instance!r} is not {kind} (nor a template rendering to one,"
                ' e.g. "{{ keep_days }}")',
            )
        ]
    if error.validator == "enum" and not subschemas:
        return [smap.problem(path, f"{error.instance!r}: no such command in this version")]
    return [smap.problem(path, error.message)]


def validate(data: Any, smap: SourceMap, schema: dict[str, Any]) -> list[Problem]:
    validator = Draft202012Validator(schema)
    errors = list(validator.iter_errors(data))
    unknown_at = {
        tuple(e.absolute_path)
        for e in errors
        if e.validator in ("additionalProperties", "unevaluatedProperties")
    }
    problems: list[Problem] = []
    for error in errors:
        # An unknown key in a treatment item is usually a misspelt treatment: say that once.
        if error.validator == "oneOf" and tuple(error.absolute_path) in unknown_at:
            continue
        problems.extend(_problems_for(error, smap))
    return problems
