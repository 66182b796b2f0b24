"""The run's change journal: one JSON object per row-level change a run makes.

Each control file the run applies has its part of the journal beside its report, under
the same number: `AREA/.postsync/runs/RUN_ID/NNN_NAME.journal` (JSON lines, `seq` from 1
in each part); the run's journal is its parts in that order, each named by the record's
entry of its control file. There they share the reports' life without more machinery:
`postsync post RECORD` finds them, a record pruned after `keep_records_days` takes them,
a killed run's are copied by the run that recovers its files (runner.sync.recover). A
preview's are in its private temporary directory.

A control file's changes are spooled to its part's temporary file as its batches are
simulated: nothing of them is held in memory but the first few, for --diff. The part
takes its name when the file's transaction is about to commit, with the report and
before the marker that commits with the changes (runner.sync.recover.marking): no
committed change is left without its journal line, no line is ever seen half written,
and a rejected file's spool is dropped (a part published for a transaction that then
failed is removed). The sync decides what each object says (runner.sync.journal); this
module only places, spools and publishes them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.core import faults
from runner.core.schemas import SCHEMA_URI
from runner.storage.atomic import AtomicFile

#: a control file's journal part: its report's name with this suffix
JOURNAL_SUFFIX = ".journal"
#: --diff shows at most this many journal lines of a control file
SHOWN = 20


def part_of(report: Path) -> Path:
    """A control file's journal part, beside its report (RUN_ID/NNN_NAME.journal)."""
    return report.with_suffix(JOURNAL_SUFFIX)


def parts(run_dir: Path) -> list[Path]:
    """A run's journal: the parts in its directory, in the order they were applied."""
    return sorted(run_dir.glob(f"*{JOURNAL_SUFFIX}"))


@dataclass
class Span:
    """A control file's lines of the journal: `first` to `last` (1-based, as `seq`),
    and how many of each kind."""

    first: int
    last: int
    kinds: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        return {"first": self.first, "last": self.last, "kinds": dict(sorted(self.kinds.items()))}

    @classmethod
    def from_json(cls, entry: dict[str, Any] | None) -> Span | None:
        if not entry:
            return None
        return cls(entry["first"], entry["last"], dict(entry["kinds"]))


@dataclass
class Spool:
    """One control file's journal lines, spooled to a temporary file beside the journal
    (numbered from `first`); the first `SHOWN` kept for --diff. Without a file (`out`
    None), it only numbers and shows them (a run's plan, for --diff)."""

    out: AtomicFile | None
    first: int
    #: the part as users see it (in messages)
    label: str = ""
    count: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    shown: list[str] = field(default_factory=list)
    #: the part is under its name (runner.record.journal.publish)
    published: bool = False
    _pending: list[str] = field(default_factory=list)

    def add(self, kind: str, text: str) -> None:
        """One change of `kind`, as its JSON text (its `seq`: `first + count`), written
        with the batch (`flush`)."""
        self.count += 1
        self.kinds[kind] += 1
        if len(self.shown) < SHOWN:
            self.shown.append(text)
        self._pending.append(text)

    def add_all(self, texts: list[str], kinds: Counter[str]) -> None:
        """Changes as their JSON texts (`kinds`: how many of each), in order."""
        self.count += len(texts)
        self.kinds.update(kinds)
        self.shown.extend(texts[: max(0, SHOWN - len(self.shown))])
        self._pending.extend(texts)

    def flush(self) -> None:
        if self._pending and self.out is not None:
            self._pending.append("")
            self.out.write_all("\n".join(self._pending).encode("utf-8"))
        self._pending.clear()

    def span(self) -> Span | None:
        return (
            Span(self.first, self.first + self.count - 1, dict(self.kinds)) if self.count else None
        )


@contextmanager
def spool(part: Path, shown: str) -> Iterator[Spool]:
    """A control file's spool of its journal part (`shown`: the part as users see it);
    removed when the block ends unless published."""
    try:
        with AtomicFile(part, mode=0o640) as out:
            yield Spool(out, 1, label=shown)
    except OSError as exc:  # the part's name in the message, whatever the operation
        raise OSError(exc.errno, exc.strerror or str(exc), shown) from None


def publish(spool: Spool) -> None:
    """The spool's lines under the part's name (nothing when the file changed nothing)."""
    try:
        spool.flush()
        if not spool.count or spool.published or spool.out is None:
            return
        faults.point("journal.publish")
        spool.out.sync()
        spool.out.commit(replace=True)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), spool.label) from None
    spool.published = True


def lines_text(spool_shown: list[str], span: Span, where: str | None) -> str:
    """--diff: a control file's journal lines, the first `SHOWN`, then how many more of
    each kind (`where`: the journal as users can open it; None for a preview's)."""
    total = span.last - span.first + 1
    head = f"journal, {total:,} lines" + (f" ({where})" if where else "")
    out = [f"        {head}:"] + [f"        {text}" for text in spool_shown]
    more = total - len(spool_shown)
    if more > 0:
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in sorted(span.kinds.items()))
        out.append(f"        ... and {more:,} more (in all: {kinds})")
    return "\n".join(out)


_ID = {"type": "integer"}
_ROW_ID = {
    "type": ["integer", "null"],
    "description": "the row's id; null where it is not known: a row made by a set-based"
    " insert (its natural key, Moodle's unique index, names it), or a preview's",
}
_TIME = {"type": "integer", "minimum": 0}
_ENROLMENT = {"status": {"enum": [0, 1]}, "timestart": _TIME, "timeend": _TIME}
_STATE = {
    "type": "object",
    "required": list(_ENROLMENT),
    "additionalProperties": False,
    "properties": _ENROLMENT,
}
_ROLE = {"contextid": _ID, "userid": _ID, "roleid": _ID, "component": {"type": "string"}}
#: a deleted group's columns besides those it shares with a grouping (as the site has them)
_GROUP_COLUMNS: dict[str, Any] = {
    "picture": _ID,
    "hidepicture": _ID,
    "visibility": _ID,
    "participation": _ID,
    "enablemessaging": _ID,
    "has_enrolmentkey": {
        "type": "boolean",
        "description": "whether it had an enrolment key (a secret: never journaled)",
    },
}
#: a row a deletion took with it: which deletion (told before it, at its line)
_WITH = {
    "enum": ["user_deleted", "cohort_deleted"],
    "description": "the deletion that took the row with it (its line follows): a user's"
    " enrolments, roles and memberships; a cohort's members",
}
#: each kind of change: its own fields (every line has `seq`, `kind`, `file`, `line`)
KINDS: dict[str, dict[str, Any]] = {
    "user_enrolment_created": {"enrolid": _ID, "userid": _ID, **_ENROLMENT},
    "user_enrolment_updated": {
        "id": _ROW_ID,
        "enrolid": _ID,
        "userid": _ID,
        "before": _STATE,
        "after": _STATE,
    },
    "user_enrolment_deleted": {
        "id": _ROW_ID,
        "enrolid": _ID,
        "userid": _ID,
        **_ENROLMENT,
        "with": _WITH,
    },
    "role_assigned": {**_ROLE, "itemid": _ID},
    "role_unassigned": {
        "id": _ROW_ID,
        **_ROLE,
        "itemid": _ID,
        "copies": {
            "type": "array",
            "items": _ID,
            "description": "ids of copies of the same assignment (no unique key in"
            " Moodle) deleted with it",
        },
        "with": _WITH,
    },
    "group_member_added": {
        "groupid": _ID,
        "userid": _ID,
        "component": {"type": "string"},
        "itemid": _ID,
    },
    "group_member_removed": {
        "id": _ROW_ID,
        "groupid": _ID,
        "userid": _ID,
        "component": {"type": "string"},
        "itemid": _ID,
        "with": _WITH,
    },
    "enrol_instance_created": {"id": _ROW_ID, "enrol": {"type": "string"}},
    "group_created": {"id": _ROW_ID, "name": {"type": "string"}, "idnumber": {"type": "string"}},
    "grouping_created": {
        "id": _ROW_ID,
        "name": {"type": "string"},
        "idnumber": {"type": "string"},
    },
    "group_updated": {"id": _ROW_ID, "before": {"type": "object"}, "after": {"type": "object"}},
    "grouping_updated": {
        "id": _ROW_ID,
        "before": {"type": "object"},
        "after": {"type": "object"},
    },
    "grouping_group_assigned": {"groupingid": _ROW_ID, "groupid": _ROW_ID},
    **{
        kind: {
            "id": _ROW_ID,
            "contextid": _ID,
            "name": {"type": "string"},
            "idnumber": {"type": ["string", "null"]},
            **(
                {"before": {"type": "object"}, "after": {"type": "object"}}
                if kind == "cohort_updated"
                else {}
            ),
        }
        for kind in ("cohort_created", "cohort_updated", "cohort_deleted")
    },
    "cohort_member_added": {"cohortid": _ROW_ID, "userid": _ID},
    "cohort_member_removed": {"id": _ROW_ID, "cohortid": _ROW_ID, "userid": _ID, "with": _WITH},
    **{
        kind: {
            "id": _ROW_ID,
            "user": {
                "type": "object",
                "description": "the user's username, mnethostid, idnumber, e-mail, auth,"
                " picture, suspended (as the row was before a deletion)",
            },
            **(
                {
                    "before": {"type": "object", "not": {"required": ["password"]}},
                    "after": {"type": "object", "not": {"required": ["password"]}},
                    "password_changed": {"type": "boolean"},
                    "password_set": {
                        "type": "boolean",
                        "description": "the line gave a password (never journaled), not"
                        " the 'not cached' of an auth keeping none in Moodle",
                    },
                }
                if kind == "user_updated"
                else {
                    "password_set": {
                        "type": "boolean",
                        "description": "the line gave the new user a password (never journaled)",
                    }
                }
                if kind == "user_created"
                else {}
            ),
        }
        for kind in ("user_created", "user_updated", "user_deleted")
    },
    **{
        f"{kind}_deleted": {
            "id": _ID,
            "name": {"type": "string"},
            "idnumber": {"type": "string"},
            "description": {"type": ["string", "null"]},
            "descriptionformat": _ID,
            **(_GROUP_COLUMNS if kind == "group" else {"configdata": {"type": ["string", "null"]}}),
            "timecreated": _TIME,
            "timemodified": _TIME,
            links: {
                "type": "array",
                "items": _ID,
                "description": f"the {links} it was in (deleted with it)"
                if kind == "group"
                else f"the {links} it held that stay (those deleted have their own lines)",
            },
        }
        for kind, links in (("group", "groupings"), ("grouping", "groups"))
    },
    "course_left": {
        "contextid": _ID,
        "userid": _ID,
        "not_listed": {
            "type": "array",
            "items": {"type": "string"},
            "description": "what postsync also deletes on a last unenrolment, as Moodle's"
            " unenrol_user, and this journal does not list row by row (the course's"
            " access time, without an event); the roles below the course it takes are"
            " role_unassigned lines before this one",
        },
    },
}
#: a deleted group's or grouping's columns besides its id, name, idnumber
_COLUMNS = ("description", "descriptionformat", "timecreated", "timemodified")
#: optional fields of a kind
_OPTIONAL: dict[str, set[str]] = {
    "role_unassigned": {"copies", "with"},
    "user_enrolment_deleted": {"with"},
    "group_member_removed": {"with"},
    "cohort_member_removed": {"with"},
    # columns a release of Moodle may lack: all but the id, name, idnumber and links
    "group_deleted": {*_COLUMNS, *_GROUP_COLUMNS},
    "grouping_deleted": {*_COLUMNS, "configdata"},
}


def journal_schema() -> dict[str, Any]:
    """One line of a run's journal (`postsync schema journal`)."""
    common = {
        "seq": {
            "type": "integer",
            "minimum": 1,
            "description": "the line's number in the run's journal",
        },
        "file": {
            "type": ["string", "null"],
            "description": "the control file, as the run shows it (null: a post-treatment's"
            " change, `step` says which)",
        },
        "line": {
            "type": ["integer", "null"],
            "minimum": 1,
            "description": "the control file's line that made the change (null: a"
            " post-treatment's, or, with a file, a snapshot's change to a row the file"
            " does not list)",
        },
        "step": {
            "type": "string",
            "description": "the post-treatment that made the change (its own part of the"
            " journal, NNN_STEP.journal, after the sync's)",
        },
        "courseid": {"type": ["integer", "null"]},
    }
    kinds = []
    for kind, fields in KINDS.items():
        own = sorted(set(fields) - _OPTIONAL.get(kind, set()))
        kinds.append(
            {
                "type": "object",
                "required": ["seq", "kind", "file", "line", "courseid", *own],
                "additionalProperties": False,
                "properties": {**common, "kind": {"const": kind}, **fields},
            }
        )
    return {
        "$schema": SCHEMA_URI,
        "$id": "urn:postsync:schema:journal",
        "title": "postsync change journal line",
        "description": "one row-level change a run made (AREA/.postsync/runs/RUN_ID/"
        "NNN_NAME.journal, one part per control file beside its report: one object per"
        " line; a post-treatment's changes in a part of their own, NNN_STEP.journal)",
        "oneOf": kinds,
    }
