"""The registry: every sync command and treatment a playbook may name, with the JSON Schema
of its parameters. The playbook schema is built from it.

It imports no run-time module, so loading and validating a playbook never loads the
sync or the treatments. Their implementations are registered under the same names, in
the same order (runner.sync.SYNC_COMMANDS, runner.treatments.TREATMENTS; a test keeps
the lists equal).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.playbook.options import (
    AUTH_SCOPE,
    COURSE_SCOPE,
    ENROL_PLUGIN,
    LIMIT,
    max_changes,
    snapshot_options,
)


@dataclass(frozen=True)
class Kind:
    """A sync command or a treatment, as a playbook sees it."""

    #: sync command: the step's options beyond the common ones (a `properties` mapping);
    #: treatment: the JSON Schema of the value under its key
    schema: Mapping[str, Any]
    #: a treatment that acts once per processed control file (`file` in its templates)
    per_file: bool = False
    #: a treatment that runs in `postsync retry` (and `post` of a retry's record): those
    #: acting on the control files themselves (archive, delete) or on what the run did
    #: not do (the group cleanup, the purge) are the retried run's, never run again
    in_retry: bool = True


# -- sync commands ------------------------------------------------------------------------

_KEYS: Mapping[str, Any] = {
    "course_key": {"enum": ["idnumber", "shortname", "id"], "default": "idnumber"},
    "user_key": {"enum": ["idnumber", "username", "email", "id"], "default": "idnumber"},
    "modifierid": {
        "oneOf": [{"type": "integer", "minimum": 0}, {"const": "admin"}],
        "default": 0,
        "description": "The user id written as modifierid of the enrolments and role"
        " assignments the sync makes (0, as Moodle's own syncs; admin: the site's main"
        " administrator, the first of its siteadmins setting).",
    },
    "membership_component": {
        "type": "string",
        "default": "",
        "maxLength": 100,
        "pattern": "^([a-z][a-z0-9_]*)?$",
        "description": "The component of the group memberships the sync writes, and the"
        " only one it removes ('' as Moodle's manual memberships; tool_sync for the"
        " memberships tool_sync writes when it protects groups).",
    },
}

COMMANDS: dict[str, Kind] = {
    "enrolments": Kind(
        {
            **_KEYS,
            "max_changes": max_changes("unenrol", "suspend", "remove_member"),
            **snapshot_options(
                "the enrolments of the step's `enrol` plugin in its `scope`'s courses",
                "unenrol",
                "suspend",
                "suspend_and_remove_roles",
                "keep",
            ),
            "scope": COURSE_SCOPE,
            "enrol": ENROL_PLUGIN,
            "max_unenrolments": {
                **LIMIT,
                "description": "max_changes' unenrol by its older name (give one of them).",
            },
            "allow_disabled_instances": {
                "type": "boolean",
                "default": False,
                "description": "Enrol through an enrol instance that is disabled in Moodle"
                " (by default such a line fails).",
            },
        }
    ),
    "group_members": Kind(
        {
            **_KEYS,
            "group_key": {"enum": ["idnumber", "name"], "default": "idnumber"},
            "max_changes": max_changes("remove_member"),
            **snapshot_options("the groups its lines name", "remove", "keep"),
        }
    ),
    "users": Kind(
        {
            "user_key": {
                "enum": ["idnumber", "username", "email"],
                "default": "idnumber",
                "description": "The column a line names its user by (a line with no"
                " value there: by username).",
            },
            "update_emails": {
                "type": "boolean",
                "default": False,
                "description": "Change an existing user's e-mail address to the file's"
                " (by default it is kept, as tool_sync's protectemails).",
            },
            "update_passwords": {
                "type": "boolean",
                "default": False,
                "description": "Change an existing user's password to the file's (by"
                " default only new users take the file's password).",
            },
            "create_passwords": {
                "type": "boolean",
                "default": False,
                "description": "A new user without a password: Moodle's cron makes one"
                " and mails it (and the user must change it), as tool_sync's"
                " createpasswords.",
            },
            "allow_admin_updates": {
                "type": "boolean",
                "default": False,
                "description": "Let a line change a site administrator or the guest"
                " (Moodle's config siteadmins, siteguest): by default such a line fails,"
                " as Moodle's own user upload refuses it. They are never deleted.",
            },
            "max_changes": max_changes("delete_user", "suspend_user"),
            **snapshot_options("the users of the `scope` auth", "suspend", "keep"),
            "scope": AUTH_SCOPE,
        }
    ),
    "cohorts": Kind(
        {
            "user_key": _KEYS["user_key"],
            "cohort_key": {
                "enum": ["idnumber", "name", "id"],
                "default": "idnumber",
                "description": "The cohort column lines name cohorts by: cidnumber"
                " (idnumber), cname (name) or cid (id).",
            },
            "create_cohorts": {
                "type": "boolean",
                "default": True,
                "description": "An add line naming a missing cohort creates it (false:"
                " the line fails), as tool_sync's cohorts_autocreate.",
            },
            "max_changes": max_changes("remove_cohort_member"),
            **snapshot_options("the cohorts its lines name", "remove", "keep"),
        }
    ),
    "groups": Kind({"course_key": _KEYS["course_key"]}),
}

# -- treatments ---------------------------------------------------------------------------

ARCHIVE_DEST = "archives/{{ now | strftime('%Y%m%d-%H%M') }}_{{ file.name }}"
#: a text report (.txt); a JSON one is named .json
REPORT_DEST = "reports/{{ now | strftime('%Y%m%d-%H%M') }}_report_{{ file.stem }}.txt"
RETRY_DEST = (
    "{{ file.parent }}/{{ file.feed_stem }}_tryback_{{ now | strftime('%Y%m%d-%H%M') }}"
    "{{ file.suffix }}"
)

_DEST: Mapping[str, Any] = {"type": "string", "minLength": 1}
_ON_CONFLICT: Mapping[str, Any] = {
    "enum": ["suffix", "fail", "overwrite"],
    "default": "suffix",
    "description": "A different file already at the name: insert .1, .2... before the"
    " extension (suffix), fail the step (fail), or replace it (overwrite).",
}
_GLOBS: Mapping[str, Any] = {"type": "array", "items": {"type": "string", "minLength": 1}}
#: a string holding a template: a number given as `"{{ keep }}"` is checked once rendered
TEMPLATE_PATTERN = r"\{\{|\{%"


def templated_integer(minimum: int) -> dict[str, Any]:
    """An integer, or a template rendering to one (checked when rendered)."""
    return {
        "type": ["integer", "string"],
        "minimum": minimum,
        "pattern": TEMPLATE_PATTERN,
        "description": f"An integer >= {minimum}, or a template rendering to one.",
    }


def _params(properties: Mapping[str, Any], *required: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    schema["properties"] = dict(properties)
    return schema


#: the parameters of the steps running a PHP script from a Moodle site
_MOODLE_CLI: Mapping[str, Any] = {
    "moodle_dir": {
        **_DEST,
        "description": "The Moodle site's directory: the one holding config.php"
        " and admin/cli/purge_caches.php (the dirroot up to Moodle 5.0, the"
        " directory above public/ from 5.1), or Moodle 5.1's dirroot (public/).",
    },
    "php": {
        "type": "array",
        "items": {"type": "string", "minLength": 1},
        "minItems": 1,
        "default": ["php"],
        "description": "The PHP interpreter, and its options.",
    },
    "run_as": {**_DEST, "description": "The user to run the script as."},
    "timeout_seconds": {**templated_integer(1), "default": 600},
    "environment": {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
        "default": {},
        "description": "Variables set for the script (never printed).",
    },
}


def _writes(default_dest: str, *, in_retry: bool = True, **options: Mapping[str, Any]) -> Kind:
    """A per-file treatment writing one file per control file: `dest`, its own options,
    `on_conflict`."""
    properties = {"dest": {**_DEST, "default": default_dest}, **options}
    schema = _params({**properties, "on_conflict": _ON_CONFLICT})
    return Kind(schema, per_file=True, in_retry=in_retry)


#: in the order of a nightly playbook (and of the README's reference)
TREATMENTS: dict[str, Kind] = {
    "clean_empty_groups": Kind(
        _params(
            {
                "groupings": {"type": "boolean", "default": False},
                "courses": {"enum": ["processed", "all"], "default": "processed"},
                "max_deletions": templated_integer(0),
                "max_changes": max_changes("delete_group"),
                "groups": {
                    "enum": ["feed", "with_idnumber", "all_empty"],
                    "default": "feed",
                    "description": "Which empty groups may go: those a feed made, as"
                    " postsync recorded them (feed); those and the groups with an idnumber"
                    " (with_idnumber); every empty group, teachers' too (all_empty, as"
                    " tool_sync).",
                },
                "exclude": {
                    **_GLOBS,
                    "default": [],
                    "description": "Globs (case ignored) on a group's name or idnumber:"
                    " a group (grouping) matching one is kept.",
                },
                "min_age_days": {
                    **templated_integer(0),
                    "default": 0,
                    "description": "A group (grouping) created less than this many days"
                    " ago is kept.",
                },
            }
        ),
        in_retry=False,
    ),
    "purge_moodle_caches": Kind(
        _params(
            {
                **_MOODLE_CLI,
                "caches": {
                    "type": "array",
                    "items": {"enum": ["muc", "theme", "lang", "js", "filter", "other"]},
                    "minItems": 1,
                    "uniqueItems": True,
                    "default": ["muc"],
                    "description": "What to purge: purge_caches.php's own options.",
                },
            },
            "moodle_dir",
        )
    ),
    "moodle_events": Kind(
        _params(
            {
                **_MOODLE_CLI,
                "userid": {
                    "oneOf": [
                        {"type": "integer", "minimum": 1},
                        {"type": "string", "minLength": 1},
                    ],
                    "description": "The acting user of the events: an id or a username"
                    " (default: the site's main administrator).",
                },
                "batch_size": {
                    **templated_integer(1),
                    "default": 500,
                    "description": "Journal lines replayed per transaction.",
                },
            },
            "moodle_dir",
        )
    ),
    "save_report": _writes(REPORT_DEST, format={"enum": ["text", "json"], "default": "text"}),
    "archive_control_files": _writes(
        ARCHIVE_DEST, in_retry=False, compress={"enum": ["none", "gzip"], "default": "none"}
    ),
    "write_retry_file": _writes(RETRY_DEST),
    "delete_control_files": Kind(_params({}), per_file=True, in_retry=False),
    "purge_old_files": Kind(
        _params(
            {
                "paths": {**_GLOBS, "minItems": 1, "description": "Directories to purge."},
                "older_than_days": templated_integer(1),
                "patterns": {**_GLOBS, "default": ["*"]},
                "exclude": {**_GLOBS, "default": []},
                "recurse": {"type": "boolean", "default": False},
                "hidden": {"type": "boolean", "default": False},
                "keep_last": {**templated_integer(0), "default": 0},
            },
            "paths",
            "older_than_days",
        ),
        in_retry=False,
    ),
    "notify": Kind(
        {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                "email": _params(
                    {
                        "smtp_host": _DEST,
                        "smtp_port": {**templated_integer(1), "default": 587},
                        "security": {"type": "string", "default": "starttls"},
                        "from": _DEST,
                        "to": {**_GLOBS, "minItems": 1},
                        "username": _DEST,
                        "password": {"type": "string", "description": "Never printed."},
                        "subject": {
                            **_DEST,
                            "description": "Default: postsync PLAYBOOK on HOST: what happened.",
                        },
                        "timeout_seconds": {**templated_integer(1), "default": 30},
                    },
                    "smtp_host",
                    "from",
                    "to",
                ),
                "webhook": _params(
                    {
                        "url": _DEST,
                        "headers": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                            "default": {},
                            "description": "Request headers (their values never printed).",
                        },
                        "secret": {
                            "type": "string",
                            "minLength": 1,
                            "description": "A key (16 characters or more) to sign the body"
                            " with (X-Postsync-Signature: HMAC-SHA256); never printed.",
                        },
                        "timeout_seconds": {**templated_integer(1), "default": 30},
                    },
                    "url",
                ),
            },
        }
    ),
}


def per_file(section: str, kind: str) -> bool:
    """Whether a step acts once per processed control file (`file` in its templates)."""
    return section == "post_treatments" and TREATMENTS[kind].per_file
