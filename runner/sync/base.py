"""What each control-file line ends as, what a sync command is given, and what a
command's state beside the enrolments' is (Part)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any, Protocol, TypeVar

CHANGED, UNCHANGED, FAILED = "changed", "unchanged", "failed"


class LineFailed(Exception):
    """The line (or the part of it being applied) fails with this message."""


def owned_by(component: str) -> str:
    """Who owns a row of this component (to say why a sync leaves it alone)."""
    return component or "no plugin (a manual membership)"


@dataclass(slots=True)
class Enrolment:
    id: int | None  # None until flushed
    status: int
    timestart: int
    timeend: int


@dataclass
class Course:
    id: int
    context_id: int
    key: str


@dataclass
class LineResult:
    number: int
    status: str  # changed | unchanged | failed
    summary: str  # what the line asks, e.g. "add student U0009 in MATH101"
    #: failed: why; otherwise what the line left alone, if anything (another plugin's row)
    message: str = ""
    course: Course | None = None
    #: failed, but a part of the line that could be applied was (it changed the site)
    partly: bool = False
    #: a groups line: the group it names (clean_empty_groups keeps it)
    group: int | None = None

    def report(self) -> str:
        """One report line, in tool_sync's spirit."""
        where = f"line {self.number}" if self.number else "missing"  # not in a snapshot
        head = f"{where}: {self.summary}" if self.summary else where
        if self.status == FAILED:
            return f"{head}: failed: {self.message}"
        notes = ["unchanged"] if self.status == UNCHANGED else []
        notes += [self.message] if self.message else []
        return f"{head}: ok" + (f" ({'; '.join(notes)})" if notes else "")


@dataclass(frozen=True)
class Chunks:
    """`commit_every`: a file's lines committed in chunks, each once this many lines or
    seconds are applied (at the end of a batch), so that no transaction holds Moodle's
    rows long (runner.sync.chunks). None: no such bound."""

    lines: int | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class Snapshot:
    """`mode: snapshot`: the file is the whole truth for its scope (runner.sync.snapshot)."""

    #: what becomes of a row of the scope the file does not list (remove, keep...)
    missing: str
    #: the step's name in postsync's record of the snapshots taken (runner.db.snapshots)
    step: str
    #: the run applying it (recorded with the step: runner.db.snapshots)
    run_id: str = ""
    #: the first snapshot of the step may act on what it misses (first_snapshot: apply)
    first: bool = False
    #: the courses (cohorts...) the file is the truth for: named, instances,
    #: {idnumber: GLOB}, {category: ID or idnumber}
    scope: Any = "named"
    #: enrolments: the enrol plugin whose enrolments the file is the truth of
    enrol: str = "manual"
    #: diff: where the step keeps the last snapshot it applied (None: no diff), the
    #: runs between two full reconciles, and whether this run reconciles in full
    #: (--full-reconcile)
    kept: Path | None = None
    full_every: int = 7
    full: bool = False


@dataclass(frozen=True)
class SyncOptions:
    course_key: str
    user_key: str
    group_key: str
    tz: tzinfo
    #: enrolments: enrol through a disabled instance instead of failing the line
    allow_disabled: bool = False
    #: the component of the group memberships the sync writes and may remove
    membership_component: str = ""
    #: modifierid of the rows the sync writes: a user id, or "admin" (the site's admin)
    modifier: int | str = 0
    #: users: an existing user's e-mail address, password change to the file's
    update_emails: bool = False
    update_passwords: bool = False
    #: users: a new user without a password has Moodle's cron make and mail one
    create_passwords: bool = False
    #: cohorts: the cohort column lines name cohorts by; add creates a missing cohort
    cohort_key: str = "idnumber"
    create_cohorts: bool = True
    #: change (unenrol, suspend...: GUARDED) -> (its limit: a count, or "N%" of its
    #: scope's rows; the setting's name): a file going over is rejected whole
    max_changes: dict[str, tuple[int | str, str]] = field(default_factory=dict)
    #: `mode: snapshot` (None: the file's lines are commands)
    snapshot: Snapshot | None = None
    #: users: a line may change a site administrator or the guest
    allow_admin_updates: bool = False
    #: commit the file in chunks (None: in one transaction)
    commit_every: Chunks | None = None


#: the changes a step's max_changes limits, and the scope a share of each is of: a
#: course's user enrolments, a group's or a cohort's members, the site's users
GUARDED = {
    "unenrol": "course",
    "suspend": "course",
    "remove_member": "group",
    "remove_cohort_member": "cohort",
    "delete_user": "site",
    "suspend_user": "site",
}


@dataclass
class Tally:
    """The rows a file added to and removed from each scope (("course", id), ("group",
    id), ("cohort", id), ("site", 0)), and the changes max_changes limits (`watch`:
    only those are told apart from the file's own rows, which costs memory)."""

    watch: frozenset[str] = frozenset()
    added: Counter[tuple[str, int]] = field(default_factory=Counter)
    removed: Counter[tuple[str, int]] = field(default_factory=Counter)
    #: (change, scope id) -> the rows that existed before the file that it took (removed
    #: or suspended): what max_changes counts (the file's own additions protect nothing)
    lost: Counter[tuple[str, int]] = field(default_factory=Counter)
    #: scope -> its name, for a refusal's message
    names: dict[tuple[str, int], str] = field(default_factory=dict)
    #: (scope kind, row key) of the rows the file created in a watched scope (a row id
    #: tells no better: a later batch reads them back with one, a preview keeps them
    #: without)
    created: set[tuple[str, object]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._scopes = {GUARDED[change] for change in self.watch}

    def add(self, scope: str, sid: int, key: object) -> None:
        """A row the file made in the scope (`key`: the row's natural key)."""
        self.added[(scope, sid)] += 1
        if scope in self._scopes:
            self.created.add((scope, key))

    def remove(self, change: str, sid: int, key: object, name: str) -> None:
        """A row the file removed from the scope of `change` (`sid`, named `name`)."""
        self.removed[(GUARDED[change], sid)] += 1
        self.took(change, sid, key, name)

    def took(self, change: str, sid: int, key: object, name: str) -> None:
        """A row `change` took (removed, suspended): counted if it was there before."""
        if change not in self.watch:
            return
        scope = GUARDED[change]
        if (scope, key) not in self.created:
            self.lost[(change, sid)] += 1
            self.names[(scope, sid)] = name


class Part(Protocol):
    """State a command keeps for a file beside the enrolments' (users, cohorts...)."""

    def flush(self) -> None:
        """Ends a batch: its changes written (a preview keeps them instead)."""

    def finish(self) -> None:
        """After the file's last batch."""


P = TypeVar("P", bound=Part)
