"""What a control file's outcome takes from its reading: the facts of the file as read,
and a rejection (what its lines did undone, none of them counted)."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from runner.record.model import FileOutcome
    from runner.sync.reader import ControlFile, ControlFileError
    from runner.sync.report import Report


def reject(outcome: FileOutcome, report: IO[str] | Report, exc: ControlFileError) -> None:
    """A file rejected whole: what its lines did is undone, none of them counts."""
    outcome.error = str(exc)
    outcome.changed = outcome.unchanged = outcome.partly = outcome.missing = 0
    outcome.same, outcome.reconcile = 0, None
    outcome.failed.clear()
    outcome.courses.clear()
    outcome.groups.clear()
    outcome.journal = None
    report.write(f"{outcome.path.name}: rejected, nothing applied: {exc}\n")


def read(outcome: FileOutcome, control: ControlFile) -> None:
    """What was read of the file: its size, digest, time and header."""
    outcome.size = control.digest.size
    outcome.sha256 = control.digest.sha.hexdigest()
    outcome.bom = control.digest.bom
    outcome.mtime_ns = control.mtime_ns
    outcome.mode = control.mode
    outcome.state = control.state
    outcome.header = control.header.raw if control.header else b""
