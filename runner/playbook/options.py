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
        "first_snapshot": {
            "enum": ["refuse", "apply"],
            "default": "refuse",
            "description": "The first snapshot the step applies to a site (postsync"
            " records each step's in postsync_snapshots): refuse rejects the file if it"
            " would act on any row it does not list; apply lets it.",
        },
    }
