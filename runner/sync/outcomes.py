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


#: the facts of a file as read that its outcome holds
FACTS = ("size", "sha256", "bom", "mtime_ns", "mode", "state", "header")


def read(outcome: FileOutcome, control: ControlFile) -> None:
    """What was read of the file: its size, digest, time and header."""
    digest = control.digest
    header = control.header.raw if control.header else b""
    facts = (digest.size, digest.sha.hexdigest(), digest.bom, control.mtime_ns, control.mode)
    for name, value in zip(FACTS, (*facts, control.state, header), strict=True):
        setattr(outcome, name, value)


def take_facts(outcome: FileOutcome, other: FileOutcome) -> None:
    """The facts of the file as `other` read it (a preview of it before its chunks)."""
    for name in FACTS:
        setattr(outcome, name, getattr(other, name))
