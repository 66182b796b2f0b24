"""The step options that guard and shape destructive changes, as the registry
(runner.playbook.registry) declares them: max_changes' limits, and a snapshot step's
mode, missing action and first snapshot. Imports no run-time module."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: a limit of max_changes: a count, or a share of the scope ('5%')
LIMIT: Mapping[str, Any] = {
    "oneOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?%$"},
    ]
}
#: each change max_changes limits: what it counts, and the scope a share is of
CHANGES = {
    "unenrol": "user enrolments removed; a share: of a course's enrolments",
    "suspend": "user enrolments suspended; a share: of a course's enrolments",
    "remove_member": "group memberships removed; a share: of a group's members",
    "remove_cohort_member": "cohort memberships removed; a share: of a cohort's members",
    "delete_user": "users deleted; a share: of the site's users",
    "suspend_user": "users suspended; a share: of the site's users",
    "delete_group": "empty groups deleted; a share: of a course's groups",
}


def max_changes(*changes: str) -> dict[str, Any]:
    """The max_changes option of a step making these destructive changes."""
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {c: {**LIMIT, "description": CHANGES[c]} for c in changes},
        "description": "A file (a cleanup: a run) that would take more than this of"
        " the rows that existed before it (a count), or more than this share of a"
        " scope's rows (e.g. '5%': of each course, group, cohort, or the site; the rows"
        " the file adds neither count nor dilute the share), is rejected whole, nothing"
        " of it applied: a truncated export. E.g. {unenrol: '5%', delete_user: 0}.",
    }


def snapshot_options(scope: str, *missing: str) -> dict[str, Any]:
    """The options of a step that may read its file as a snapshot of `scope`."""
    return {
        "mode": {
            "enum": ["commands", "snapshot"],
            "default": "commands",
            "description": "commands: each line is an order (add, del...); snapshot: the"
            f" file is the whole truth for its scope ({scope}): what it lists is added as"
            " by add lines, and what the scope holds that it does not list is acted on as"
            " `missing` says. A snapshot step reads one file (the feed's own: never a"
            " retry file).",
        },
        "missing": {
            "enum": list(missing),
            "description": "mode: snapshot: what becomes of a row of the scope the file"
            " does not list (required with mode: snapshot).",
        },
        "diff": {
            "type": "boolean",
            "default": False,
            "description": "mode: snapshot: keep the last snapshot applied (AREA/.postsync/"
            "snapshots/) and apply only the lines that changed since: a line the kept"
            " snapshot holds as it is is not applied again, and only the rows of the lines"
            " it held that the file no longer lists are acted on as `missing` says. A run"
            " reconciles the whole file every `full_every` runs, with --full-reconcile, when"
            " the header or the step's options changed, or when the kept snapshot is not the"
            " one the database last took.",
        },
        "full_every": {
            "type": "integer",
            "minimum": 1,
            "default": 7,
            "description": "diff: every this many runs of the step, one reconciles the whole"
            " file against the database (rows other writers changed since are set right"
            " then); 1: every run.",
        },
        "first_snapshot": {
            "enum": ["refuse", "apply"],
            "default": "refuse",
            "description": "The first snapshot the step applies to a site (postsync"
            " records each step's in postsync_snapshots): refuse rejects the file if it"
            " would act on any row it does not list; apply lets it.",
        },
    }


#: an enrolments snapshot's scope: the courses the file is the truth for
COURSE_SCOPE: Mapping[str, Any] = {
    "oneOf": [
        {"enum": ["named", "instances"]},
        {
            "type": "object",
            "required": ["idnumber"],
            "additionalProperties": False,
            "properties": {"idnumber": {"type": "string", "minLength": 1}},
        },
        {
            "type": "object",
            "required": ["category"],
            "additionalProperties": False,
            "properties": {"category": {"type": ["string", "integer"], "minLength": 1}},
        },
    ],
    "default": "named",
    "description": "mode: snapshot: the courses the file is the truth for:"
    " those its lines name (named), every course with an instance of the"
    " step's enrol plugin (instances), those whose idnumber matches a pattern"
    " ({idnumber: '2026-*'}), those of a category and its subcategories"
    " ({category: ID or idnumber}).",
}
#: an enrolments snapshot's plugin
ENROL_PLUGIN: Mapping[str, Any] = {
    "type": "string",
    "pattern": "^[a-z][a-z0-9_]*$",
    "default": "manual",
    "description": "mode: snapshot: the enrol plugin whose enrolments the file"
    " is the truth of (its lines' enrol, when given, must be this one).",
}
#: a users snapshot's scope
AUTH_SCOPE: Mapping[str, Any] = {
    "type": "object",
    "required": ["auth"],
    "additionalProperties": False,
    "properties": {"auth": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"}},
    "description": "mode: snapshot: the users the file is the truth for: those"
    " of this authentication plugin ({auth: ldap}), not deleted (required"
    " with mode: snapshot).",
}
