"""What a sync command is, and what each control-file line ends as."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import TYPE_CHECKING, Any, Protocol

from runner.sync.reader import Columns, DataLine

if TYPE_CHECKING:
    from runner.sync.state import SiteState

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


class SyncCommand(Protocol):
    """A control-file kind. Its docstring documents its columns (README reference)."""

    #: properties a step of this command accepts beyond the common ones
    schema: Mapping[str, Any]
    columns: Columns

    def prepare(self, state: SiteState, lines: Sequence[DataLine]) -> None:
        """Resolve the batch's identifiers and load the state it touches (reads only)."""

    def apply(self, state: SiteState, line: DataLine, options: SyncOptions) -> LineResult:
        """Simulate one line against `state`; the caller flushes the batch."""
