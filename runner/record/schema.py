"""The run record's JSON Schema (`postsync schema record`)."""

from __future__ import annotations

from typing import Any

from runner.core.schemas import SCHEMA_URI

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
            "raw": {
                "type": ["string", "null"],
                "description": "the line's bytes (terminator included), base64; null for a"
                " line holding a secret column (a users file's password): the record keeps"
                " no password, and `postsync post` rebuilds the retry file from the control"
                " file (or its archive), checked against its sha256",
            },
            "text": {
                **_STR,
                "description": "the line decoded, for reading (a password as ***)",
            },
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
                "properties": {
                    **dict.fromkeys(("total", "changed", "unchanged", "failed"), _COUNT),
                    "partly": {
                        **_COUNT,
                        "description": "failed lines of which a part was applied",
                    },
                    "missing": {
                        **_COUNT,
                        "description": "mode: snapshot: the rows of the scope the file"
                        " does not list that it acted on (each a `missing:` line of the"
                        " report); absent when it acted on none",
                    },
                    "same": {
                        **_COUNT,
                        "description": "diff: true: the lines the same as in the snapshot"
                        " the step kept, not applied again (counted in total); absent"
                        " when none",
                    },
                },
            },
            "reconcile": {
                "type": "object",
                "required": ["mode"],
                "additionalProperties": False,
                "properties": {
                    "mode": {"enum": ["diff", "full"]},
                    "why": {**_STR, "description": "full: why the whole file was compared"},
                    "since": {
                        **_STR,
                        "description": "diff: the run that applied the snapshot kept",
                    },
                    "error": {
                        **_STR,
                        "description": "why the snapshot the step keeps could not be"
                        " written once the file was applied (the next run reconciles"
                        " the whole file)",
                    },
                },
                "description": "a snapshot step with diff: true: whether the file was read"
                " against the snapshot the step kept (diff) or compared whole (full)",
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
            "declared_groups": {
                "type": "array",
                "items": {"type": "integer"},
                "description": "a groups file: the ids of the groups its lines name"
                " (clean_empty_groups keeps them)",
            },
            "report": {
                "type": ["string", "null"],
                "description": "the report lines' file, relative to the record's directory",
            },
            "error": {"type": ["string", "null"], "description": "why the file was rejected"},
            "applied_by": {
                "type": ["string", "null"],
                "description": "the run that applied the file, when it is not this one: it"
                " was killed or interrupted after the file's commit, and this run post-treated"
                " the file without applying it again",
            },
            "mode": {
                "type": ["integer", "null"],
                "minimum": 0,
                "description": "the control file's permission bits (archives, retry files"
                " and reports made of it are no more readable)",
            },
            "mtime": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "the control file's modification time when the sync read it"
                " (its archive is dated when it is stored)",
            },
            "step": {
                **_STR,
                "description": "the sync step that applied it: its command and its file"
                " pattern as the playbook writes it (`postsync retry` applies the failed"
                " lines through it again)",
            },
            "retry_of": {
                "type": ["string", "null"],
                "description": "a retry: the run whose failed lines of this file were"
                " applied again (their numbers are the control file's; size and sha256 are"
                " those of the lines applied)",
            },
            "feed_sha256": {
                "type": ["string", "null"],
                "pattern": "^[0-9a-f]{64}$",
                "description": "a retry: the sha256 of the control file its lines come from",
            },
            "archive": {
                "type": ["string", "null"],
                "description": "where the control file's archive is (a retry: the archive"
                " the retried run made)",
            },
            "retry_file": {
                "type": ["string", "null"],
                "description": "where the retry file of its failed lines is",
            },
            "journal": {
                "type": ["object", "null"],
                "description": "its part of the change journal (`postsync schema"
                " journal`): RUN_ID/NNN_NAME.journal beside its report, lines `first` to"
                " `last` as their `seq`, and how many of each kind; published with the"
                " report before the changes commit (a file recovered from a killed run:"
                " that run's part, copied); null: it changed no row the journal lists (so"
                " far the enrolments and group_members commands')",
                "required": ["first", "last", "kinds"],
                "additionalProperties": False,
                "properties": {
                    "first": {"type": "integer", "minimum": 1},
                    "last": {"type": "integer", "minimum": 1},
                    "kinds": {
                        "type": "object",
                        "additionalProperties": {"type": "integer", "minimum": 1},
                    },
                },
            },
            "journal_error": {
                "type": ["string", "null"],
                "description": "why its journal part is missing: a file recovered from a"
                " killed run whose part cannot be read (its changes are committed; the"
                " sync step failed)",
            },
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
            "sync_complete": {
                "type": "boolean",
                "description": "every sync step of the run ran (`postsync post` refuses a"
                " record without it: its post-treatments would act on a half-done sync)",
            },
            "complete": {
                "type": "boolean",
                "description": "every step of the playbook ran: none left out by tags,"
                " none stopped by a failed step, not interrupted (SIGINT, SIGTERM); the"
                " files it applied are no longer marked as applied",
            },
            "retries": {
                "type": ["string", "null"],
                "description": "`postsync retry`: the run whose failed lines this run applied"
                " again",
            },
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
