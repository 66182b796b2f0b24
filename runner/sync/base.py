"""What each control-file line ends as, what a sync command is given, and what a
command's state beside the enrolments' is (Part)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Protocol, TypeVar

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
        head = f"line {self.number}: {self.summary}" if self.summary else f"line {self.number}"
        if self.status == FAILED:
            return f"{head}: failed: {self.message}"
        notes = ["unchanged"] if self.status == UNCHANGED else []
        notes += [self.message] if self.message else []
        return f"{head}: ok" + (f" ({'; '.join(notes)})" if notes else "")


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
    #: enrolments: a file unenrolling more (a count, or "N%" of a course's) is rejected
    max_unenrolments: int | str | None = None
    #: users: a line may change a site administrator or the guest
    allow_admin_updates: bool = False


@dataclass
class Tally:
    """The user enrolments a file added and removed, by course."""

    added: Counter[int] = field(default_factory=Counter)
    removed: Counter[int] = field(default_factory=Counter)
    keys: dict[int, str] = field(default_factory=dict)
    #: by course, the enrolments the course had before the file that the file removed
    #: (max_unenrolments counts these: the file's own additions protect nothing)
    lost: Counter[int] = field(default_factory=Counter)
    #: (enrol id, user id) of the enrolments the file created (a row id tells no
    #: better: a later batch reads them back with one, a preview keeps them without)
    created: set[tuple[int, int]] = field(default_factory=set)

    def add(self, course: Course, key: tuple[int, int]) -> None:
        self.added[course.id] += 1
        self.created.add(key)

    def remove(self, course: Course, key: tuple[int, int]) -> None:
        self.removed[course.id] += 1
        if key not in self.created:
            self.lost[course.id] += 1
            self.keys[course.id] = course.key


class Part(Protocol):
    """State a command keeps for a file beside the enrolments' (users, cohorts...)."""

    def flush(self) -> None:
        """Ends a batch: its changes written (a preview keeps them instead)."""

    def finish(self) -> None:
        """After the file's last batch."""


P = TypeVar("P", bound=Part)
