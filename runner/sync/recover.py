"""A sync's side of runner.step.recovery: the markers committed with each control
file's changes (runner.db.applied), and the files a killed run applied, taken from
their markers instead of applied again."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from runner.core.errors import database_reason

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from runner.record.journal import Spool
    from runner.record.model import FileOutcome
    from runner.step.facts import RunFacts
    from runner.step.recovery import Recovery
    from runner.step.services import ReportFiles
    from runner.storage.paths import FileState
    from runner.sync.chunks import Resume
    from runner.sync.report import Report


def load(run: RunFacts, recovery: Recovery, engine: Engine) -> None:
    """The files killed runs of this area applied (runner.step.recovery); a real run
    makes postsync's tables first (the markers', the feed's groups')."""
    from sqlalchemy.exc import SQLAlchemyError

    from runner.db import applied, own_tables

    if recovery.loaded:
        return
    if not run.check:
        own_tables.ensure(engine)
        with engine.connect() as conn:
            recovery.load(conn, run.area, run.runs_dir, run.run_id)
        return
    try:
        with engine.connect() as conn:
            recovery.load(conn, run.area, run.runs_dir, run.run_id)
    except SQLAlchemyError as exc:
        # a SELECT-only user granted Moodle's tables before postsync made its own
        recovery.loaded = True
        print(
            f"postsync: warning: the preview cannot read {applied.TABLE}"
            f" ({database_reason(exc)}): it assumes that no control file is already"
            f" applied by a killed run; grant SELECT on {applied.TABLE} to this user",
            file=sys.stderr,
            flush=True,
        )


def _stored(run: RunFacts, outcome: FileOutcome, step: str, resume: Resume | None = None) -> str:
    """A marker's outcome: the file's record entry and the step that applied it, with
    the run's secrets masked (and, a file committed in chunks, where it resumes)."""
    from runner.core import secrets
    from runner.record.store import file_entry

    entry = {**file_entry(outcome, run.runs_dir), "step": step}
    if resume is not None:
        entry["resume"] = resume.as_json()
    return secrets.dumps(entry)


class Marking:
    """What commits with a control file's changes (`__call__`): its report and its
    journal part published, its marker (`step`: which sync step of the playbook applied
    it); and with each of its chunks (`chunk`), the marker saying up to where."""

    def __init__(
        self, run: RunFacts, report: Report, step: str, spool: Spool | None, marker: int | None
    ) -> None:
        self.run, self.report, self.step, self.spool = run, report, step, spool
        #: the file's marker, once a chunk (or a killed run's) made it
        self.marker = marker
        #: the file's last transaction committed (its report and journal part stand)
        self.committed = False

    def _store(self, conn: Connection, outcome: FileOutcome, resume: Resume | None) -> None:
        from runner.db import applied

        run = self.run
        when = int(run.now.timestamp())
        stored = _stored(run, outcome, self.step, resume)
        if self.marker is None:
            self.marker = applied.mark(
                conn,
                run.area,
                run.run_id,
                outcome.path,
                size=outcome.size,
                sha256=outcome.sha256,
                when=when,
                outcome=stored,
            )
        else:
            applied.remark(conn, self.marker, run.run_id, when=when, outcome=stored)

    def chunk(self, conn: Connection, outcome: FileOutcome, resume: Resume) -> None:
        self._store(conn, outcome, resume)

    def __call__(self, conn: Connection, outcome: FileOutcome) -> None:
        from runner.record import journal

        if self.spool is not None:  # first: a part is removed if what follows fails
            journal.publish(self.spool)
        self.report.publish()
        self._store(conn, outcome, None)


def recovered(
    run: RunFacts,
    recovery: Recovery,
    reports: ReportFiles,
    engine: Engine,
    path: Path,
    expected: FileState | None,
    step: str,
    number: int,
    fingerprinted: tuple[int, str] | None = None,
) -> FileOutcome | Resume | None:
    """The outcome of a file a killed run's `step` applied (these very bytes), taken from
    its marker, with a copy of its report in this run's directory (the run's `number`th
    control file); None: apply it. `fingerprinted`: the (size, sha256) of the bytes to
    apply, when they are not the file's (a retry's failed lines). A file the killed run
    committed in chunks up to a line: where to resume it (runner.sync.chunks.Resume);
    its marker becomes this run's with this run's first chunk.

    The marker becomes this run's, naming this run's copy of the report and the run
    that applied the file, so that a second kill loses neither."""
    from runner.db import applied
    from runner.record.model import FileOutcome
    from runner.sync.reader import fingerprint

    marker = recovery.take(path, step)
    if marker is None:
        return None
    if (fingerprinted or fingerprint(path, expected)) != (marker.size, marker.sha256):
        recovery.dropped.append(marker.id)  # new bytes since: applied as usual
        return None
    runs_dir = run.runs_dir
    outcome = FileOutcome.from_json(marker.outcome, runs_dir)
    if "resume" in marker.outcome:  # committed in chunks up to a line: the rest to apply
        from runner.sync.chunks import Resume

        resume = Resume.from_json(marker.outcome["resume"])
        resume.marker, resume.source, resume.outcome = marker.id, outcome.report, outcome
        outcome.report = reports.report_path(path, number)
        outcome.journal = None  # its span is the file's whole, once applied
        return resume
    outcome.applied_by = outcome.applied_by or marker.run_id
    source, outcome.report = outcome.report, reports.report_path(path, number)
    _copy_report(source, runs_dir, outcome)
    if outcome.journal is not None and source is not None:
        _copy_journal(source, runs_dir, outcome)
    if not run.check:
        applied.claim(engine, marker.id, run.run_id, _stored(run, outcome, step))
    return outcome


def _open_own(source: Path, runs_dir: Path) -> int:
    """A file of a killed run's directory, opened for reading (never through a link,
    never outside the runs' directory)."""
    if runs_dir not in source.parents or ".." in source.parts:
        raise FileNotFoundError(source)
    return os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)


def copy_start(
    source: Path | None, runs_dir: Path, size: int, write: Callable[[bytes], None]
) -> bool:
    """The first `size` bytes of a killed run's report or journal part (those its last
    committed chunk counted) to `write`; False when they are not all to be had."""
    if source is None:
        return False
    try:
        with open(_open_own(source, runs_dir), "rb") as stream:
            left = size
            while left and (chunk := stream.read(min(left, 1 << 20))):
                write(chunk)
                left -= len(chunk)
    except OSError:
        return False
    return left == 0


def _copy_journal(source: Path, runs_dir: Path, outcome: FileOutcome) -> None:
    """This run's copy of the killed run's journal part of the file (published with the
    changes it tells); when it is gone, the outcome says so (the changes are committed,
    their lines are not to be had)."""
    from runner.record.journal import part_of
    from runner.storage.atomic import AtomicFile

    assert outcome.report is not None
    try:
        with AtomicFile(part_of(outcome.report), mode=0o640) as out:
            with open(_open_own(part_of(source), runs_dir), "rb") as stream:
                while chunk := stream.read(1 << 20):
                    out.write_all(chunk)
            out.sync()
            out.commit(replace=True)
    except OSError as exc:
        outcome.journal = None
        outcome.journal_error = (
            f"the journal part of the killed run that applied it cannot be read: {exc.strerror}"
        )


def _copy_report(source: Path | None, runs_dir: Path, outcome: FileOutcome) -> None:
    """This run's copy of the killed run's report of the file (its line outcomes); when
    it is gone, a report of what the marker holds."""
    from runner.storage.atomic import AtomicFile

    assert outcome.report is not None
    with AtomicFile(outcome.report) as out:
        try:
            if source is None:
                raise FileNotFoundError(source)
            with open(_open_own(source, runs_dir), "rb") as stream:
                while chunk := stream.read(1 << 20):
                    out.write_all(chunk)
        except OSError:
            lines = [f"{outcome.path.name}: {outcome.summary()} (its report is gone)"]
            lines += [f"line {f.number}: failed: {f.message}" for f in outcome.failed]
            out.write_all(("\n".join(lines) + "\n").encode("utf-8"))
        out.sync()
        out.commit(replace=True)
