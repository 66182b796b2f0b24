"""The exception hierarchy and the one place that maps it to exit codes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    INTERNAL = 1
    LINES_FAILED = 2
    STEP_FAILED = 3
    INVALID = 4
    USAGE = 5
    LOCKED = 6
    #: `postsync status`: a playbook's last run is older than --max-age-hours, or none
    STALE = 7
    INTERRUPTED = 130  # SIGINT (Ctrl-C): 128 + 2
    TERMINATED = 143  # SIGTERM (systemd's stop, kill): 128 + 15


@dataclass(frozen=True)
class Problem:
    """One located problem in a user's file: `FILE:LINE:COL: PATH: message`."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PostsyncError(Exception):
    """Base of every error postsync reports to its user without a traceback."""

    exit_code: Exit = Exit.STEP_FAILED


class UsageError(PostsyncError):
    exit_code = Exit.USAGE


class LockedError(PostsyncError):
    exit_code = Exit.LOCKED


class StepError(PostsyncError):
    """A step could not do its work (I/O error, inconsistent state...)."""

    exit_code = Exit.STEP_FAILED


class FilesRejected(StepError):
    """A sync step rejected some control files (nothing of each was applied) and
    applied the others: the run goes on with those, and exits 3 at the end."""


class Terminated(KeyboardInterrupt):
    """SIGTERM: unwinds as an interruption does, and exits 143."""


def interruption_exit(exc: BaseException) -> Exit:
    return Exit.TERMINATED if isinstance(exc, Terminated) else Exit.INTERRUPTED


class Interrupted(PostsyncError):
    exit_code = Exit.INTERRUPTED


class PlaybookError(PostsyncError):
    """The playbook (or record) is invalid; carries every problem found, sorted by line."""

    exit_code = Exit.INVALID

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.path))
        super().__init__("\n".join(str(p) for p in self.problems))


class MachineError(PlaybookError):
    """The playbook is right, but this machine cannot run it (a directory, program or
    user it names is missing here): a preview and a run stop before any change (exit 4),
    `postsync validate` warns, since it may run where the site is not (CI)."""


_DATABASE_HINTS = (
    (
        ("database is locked", "lock timeout", "lock wait timeout"),
        "another writer held a lock longer than database_timeouts.lock allows;"
        " run again once it is done, or raise the timeout",
    ),
    (
        ("timeout expired", "timed out", "can't connect", "lost connection"),
        "the server did not answer within database_timeouts.connect; check the host,"
        " the port and the network",
    ),
)


def database_reason(exc: BaseException) -> str:
    """What a database error says, in one line, with what to do about a timeout."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    reason = text.splitlines()[0] if text else type(exc).__name__
    lowered = text.lower()
    for needles, hint in _DATABASE_HINTS:
        if any(n in lowered for n in needles):
            return f"{reason} ({hint})"
    return reason
