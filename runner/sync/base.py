"""What each control-file line ends as, and what a sync command is given."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

CHANGED, UNCHANGED, FAILED = "changed", "unchanged", "failed"


class LineFailed(Exception):
    """The line fails with this message; nothing of it was applied."""


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
    message: str = ""
    course: Course | None = None

    def report(self) -> str:
        """One report line, in tool_sync's spirit."""
        head = f"line {self.number}: {self.summary}" if self.summary else f"line {self.number}"
        if self.status == FAILED:
            return f"{head}: failed: {self.message}"
        return f"{head}: ok" + (" (unchanged)" if self.status == UNCHANGED else "")


@dataclass(frozen=True)
class SyncOptions:
    course_key: str
    user_key: str
    group_key: str
    tz: tzinfo
    #: enrolments: enrol through a disabled instance instead of failing the line
    allow_disabled: bool = False
