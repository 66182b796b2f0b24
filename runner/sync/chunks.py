"""`commit_every`: a control file's lines committed in chunks, so that no transaction
holds Moodle's rows for long on a live site.

Nothing of a file is committed before the whole of it is checked: it is read to its end
first (its encoding's verdict, a line too long, a bad header: the file is rejected, as
in one transaction) and, when the step has max_changes, previewed whole (the preview's
own code, its writes withheld) so that a file going over a limit applies nothing.
Only then are its lines applied, and a chunk committed once `lines` lines or `seconds`
seconds are applied, at the end of a batch, with the file's applied marker
(runner.db.applied) saying up to which line it is committed, and how much of its
report and journal part goes with it (both under their names, on disk, before the
commit). A run killed after a chunk's commit is resumed by the next one after that
line (runner.sync.recover): the lines it committed are never applied twice, their
outcomes are the marker's, their report and journal lines the killed run's.

Between two chunks, the file must stay the file read and checked (its inode, size,
mtime, ctime): else the run stops, the chunks committed are the file's, and the next
run applies the file's new bytes whole (a new export).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from runner.core import faults
from runner.core.interpreter import uninterrupted
from runner.sync.reader import ControlFile, ControlFileError, NotRead, NotReady

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import Connection

    from runner.record.journal import Spool
    from runner.record.model import FileOutcome
    from runner.step.services import Unit
    from runner.storage.paths import FileState
    from runner.sync.base import Chunks, SyncOptions
    from runner.sync.journal import FileJournal
    from runner.sync.report import Report
    from runner.sync.state import SiteState


@dataclass
class Resume:
    """Where the committed chunks of a file a killed run applied end: its lines up to
    `line`, the first `report` bytes of its report, the first `journal` bytes of its
    journal part (`count` lines, by kind)."""

    line: int
    report: int
    journal: int
    count: int
    kinds: dict[str, int] = field(default_factory=dict)
    #: the marker's id (it becomes this run's), and the killed run's report
    marker: int = 0
    source: Path | None = None
    #: the outcome of the lines committed
    outcome: FileOutcome | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "report": self.report,
            "journal": self.journal,
            "count": self.count,
            "kinds": dict(sorted(self.kinds.items())),
        }

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> Resume:
        return cls(
            int(entry["line"]),
            int(entry["report"]),
            int(entry["journal"]),
            int(entry["count"]),
            {str(k): int(v) for k, v in dict(entry.get("kinds", {})).items()},
        )


def read_through(control: ControlFile) -> None:
    """The whole file read once, unparsed: its encoding's verdict and every check of
    its lines' bytes (ControlFileError), its state as read (`control.state`)."""
    for _line in control.lines(parse=lambda _raw: False):
        pass


def still(path: Path, checked: FileState, committed: int) -> None:
    """NotReady when the file at `path` is no longer the one checked (called before a
    chunk's commit; `committed`: its lines up to that line are)."""
    from runner.storage.paths import FileState

    try:
        now = FileState.of(os.lstat(path))
    except FileNotFoundError:
        now = None
    change = "was removed" if now is None else checked.change(now)
    if change is None:
        return
    if not committed:
        raise NotReady(
            0, f"{change} while it was applied: nothing of it applied; left for the next run"
        )
    raise Interrupted(
        0,
        f"{change} while it was applied in chunks: its lines up to line {committed:,} are"
        " committed; the next run applies the file as it is then",
    )


class Interrupted(NotReady):
    """The file changed between two chunks: what is committed stays."""


@dataclass
class Chunker:
    """When to commit a chunk, and what goes with it."""

    every: Chunks
    #: the file as checked before the first chunk
    checked: FileState
    #: (connection, outcome so far, where it resumes) before a chunk's commit: the marker
    marker: Callable[[Connection, FileOutcome, Resume], None]
    #: the last line committed (0: none yet), by this run or the killed one it resumes
    committed: int = 0
    #: the report's and journal's bytes committed with it
    report_bytes: int = 0
    journal_bytes: int = 0
    #: the file's last transaction committed
    done: bool = False
    _lines: int = 0
    _since: float = field(default_factory=time.monotonic)

    def due(self, lines: int) -> bool:
        """After a batch of `lines` lines: whether a chunk ends here."""
        self._lines += lines
        every = self.every
        return (every.lines is not None and self._lines >= every.lines) or (
            every.seconds is not None and time.monotonic() - self._since >= every.seconds
        )

    def commit(
        self,
        unit: Unit,
        state: SiteState,
        outcome: FileOutcome,
        report: Report,
        journal: FileJournal,
        line: int,
        record_feed: Callable[[Connection], None],
    ) -> None:
        """The lines up to `line` committed, with the marker saying so."""
        state.checkpoint()
        record_feed(unit.conn)
        still(outcome.path, self.checked, self.committed)
        outcome.journal = journal.span()
        spool = journal.spool
        resume = Resume(
            line,
            report.checkpoint(),
            0 if spool is None else _expose(spool),
            0 if spool is None else spool.count,
            {} if spool is None else dict(spool.kinds),
        )
        self.marker(unit.conn, outcome, resume)
        faults.point("sync.chunk")
        with uninterrupted():  # a chunk committed is noted so, whatever signal comes
            unit.checkpoint()
            faults.point("sync.chunk.committed")
            self.committed, self.report_bytes = line, resume.report
            self.journal_bytes = resume.journal
        self._lines, self._since = 0, time.monotonic()
        faults.point("sync.chunked")

    def abandon(self, report: object, journal: FileJournal | None) -> None:
        """The file's transaction failed (or was never committed): its report and
        journal part, if under their names already, end with the last chunk committed
        (this run's or the killed run's), and are removed when none was."""
        from runner.sync.report import Report

        if isinstance(report, Report) and report.out.exposed:
            if self.committed:
                report.rewind(self.report_bytes)
            else:
                report.path.unlink(missing_ok=True)
        spool = None if journal is None else journal.spool
        if spool is not None and spool.out is not None and spool.out.exposed:
            if self.journal_bytes:
                spool.out.rewind(self.journal_bytes)
            else:
                spool.out.path.unlink(missing_ok=True)


def _expose(spool: Spool) -> int:
    """The journal lines so far under the part's name, on disk, more to come: bytes."""
    try:
        spool.flush()
        if spool.out is None or not spool.count:
            return 0  # no part for a file that changed nothing (yet)
        return spool.out.expose()
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), spool.label) from None


def check_whole(
    preview: Callable[[FileOutcome, IO[str], Resume | None], None],
    outcome: FileOutcome,
    options: SyncOptions,
    report: IO[str] | Report,
    skip: int,
    control: ControlFile,
) -> FileState | None:
    """Before the first chunk: the file read whole or, with max_changes, `preview`ed
    whole (from after line `skip`); the file as checked, or None when it is rejected
    (the outcome and report say why). NotRead when it is not the file listed."""
    from runner.record.model import FileOutcome
    from runner.sync.outcomes import read, reject, take_facts

    if not options.max_changes:
        try:
            read_through(control)
        except NotRead:
            raise
        except ControlFileError as exc:
            read(outcome, control)
            reject(outcome, report, exc)
            return None
        read(outcome, control)
        return control.state
    trial = FileOutcome(
        outcome.command, outcome.path, outcome.encoding, outcome.separator, step=outcome.step
    )
    preview(trial, cast("IO[str]", _Discard()), Resume(skip, 0, 0, 0) if skip else None)
    take_facts(outcome, trial)
    if trial.error is not None:
        outcome.error = trial.error
        report.write(f"{outcome.path.name}: rejected, nothing applied: {trial.error}\n")
        return None
    return trial.state


class _Discard:
    """The report of a file's preview before its chunks: not kept."""

    def write(self, text: str) -> int:
        return len(text)


def how_much(chunker: Chunker | None, nothing: str) -> str:
    """What of a file whose apply failed is committed (`nothing`: how to say none)."""
    if chunker is None or not chunker.committed:
        return nothing
    line = chunker.committed
    return f"its lines up to line {line:,} are committed; the next run applies the rest"
