"""Apply one control file: stream it in batches inside one transaction.

Under --check the same code runs on a read-only connection and the writes are withheld
(kept in memory: runner.step.preview), so the preview reports exactly the per-line
outcomes of the real run and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import replace
from itertools import islice
from typing import IO, cast

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from runner.core import faults
from runner.core.errors import StepError, database_reason
from runner.core.interpreter import tuned_interpreter, uninterrupted
from runner.db import feed_groups
from runner.db.tables import MoodleTables
from runner.record.model import FailedLine, FileOutcome
from runner.step.preview import Withheld
from runner.step.services import Unit
from runner.storage.paths import FileState
from runner.sync import snapshot
from runner.sync.base import CHANGED, FAILED, Chunks, SyncOptions
from runner.sync.chunks import Chunker, Resume, check_whole, how_much
from runner.sync.command import SnapshotCommand, SyncCommand
from runner.sync.diffing import Diff
from runner.sync.guard import check_changes, keep_tally
from runner.sync.journal import FileJournal
from runner.sync.masking import UNALIGNED, hide_values
from runner.sync.memory import InMemory
from runner.sync.outcomes import read, reject
from runner.sync.reader import (
    MAX_LINE_BYTES,
    ControlFile,
    ControlFileError,
    DataLine,
    Dialect,
    NotRead,
)
from runner.sync.recover import Marking
from runner.sync.report import Report
from runner.sync.state import SiteState

#: lines per batch; on SQLite, where every statement is a call into the same process,
#: bigger batches cost less per line (measured on 1,000,000 lines: 2,000 lines a batch
#: 44 s, 8,000 37 s, for 27 MB more at peak); on a server, smaller batches let the
#: writes of one overlap the simulation of the next for longer (10,000: 4% slower)
BATCH = {"sqlite": 8000, "": 2000}


def batch_size(dialect: str) -> int:
    return BATCH.get(dialect, BATCH[""])


def _batches(lines: Iterator[DataLine], size: int) -> Iterator[list[DataLine]]:
    while batch := list(islice(lines, size)):
        yield batch


def sync_file(
    transaction: Callable[[], AbstractContextManager[Unit]],
    tables: MoodleTables,
    command: SyncCommand,
    outcome: FileOutcome,
    options: SyncOptions,
    *,
    now: int,
    report: IO[str] | Report,
    expected: FileState | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
    on_batch: Callable[[int, int], None] | None = None,
    withheld: Withheld | None = None,
    before_commit: Callable[[Connection, FileOutcome], None] | None = None,
    data: bytes | None = None,
    journal: FileJournal | None = None,
    resume: Resume | None = None,
) -> None:
    """Apply `outcome.path` in one `transaction()`; fills `outcome`.

    A rejected file (bad header) changes nothing and sets `outcome.error`; a file not
    the one `expected`, or changed while read (NotRead, NotReady) changes nothing and
    raises; a database
    failure rolls back and raises StepError. `on_batch(bytes read, lines)` after each
    batch (progress). With `withheld` (a preview), nothing is written: the changes are
    kept there. `before_commit(connection, outcome)` runs in the file's transaction once
    every line is applied (the outcome complete): what it writes commits with the file.
    With `data`, those bytes are read instead of the file (a retry's failed lines).
    `journal`: where the changes the lines decide are told (runner.sync.journal); its
    span is the outcome's once every line is applied. A real run's `options.commit_every`
    commits the lines in chunks once the whole file is checked (runner.sync.chunks;
    `before_commit` is then a runner.sync.recover.Marking); `resume`: the lines a killed
    run committed so, skipped (`outcome` holds theirs).
    """
    dialect = Dialect(outcome.encoding, outcome.separator, max_line_bytes)
    control = (
        ControlFile(outcome.path, dialect, command.columns, expected)
        if data is None
        else InMemory(outcome.path, dialect, command.columns, data, outcome.mode)
    )
    diff = _diff(command, options, dialect, withheld, data)
    skip = resume.line if resume is not None else 0
    chunker = None
    if withheld is None and isinstance(before_commit, Marking):
        every = options.commit_every if data is None and options.snapshot is None else None
        if every is not None or resume is not None:

            def preview(trial: FileOutcome, sink: IO[str], after: Resume | None) -> None:
                sync_file(
                    transaction,
                    tables,
                    command,
                    trial,
                    replace(options, commit_every=None),
                    now=now,
                    report=sink,
                    expected=expected,
                    max_line_bytes=max_line_bytes,
                    withheld=Withheld(counting=True),
                    resume=after,
                )

            assert isinstance(control, ControlFile)
            whole = check_whole(preview, outcome, options, report, skip, control)
            if whole is None and skip:  # the rest of a file a killed run began
                raise StepError(
                    f"{outcome.path.name}: {outcome.error} (its lines up to line {skip:,}"
                    " are committed, by a killed run: the rest is applied once it passes)"
                )
            if whole is None:
                return  # rejected: nothing of it applied
            assert isinstance(report, Report)
            control = ControlFile(outcome.path, dialect, command.columns, whole)
            spool = journal.spool if journal is not None else None
            chunker = Chunker(
                every or Chunks(),
                whole,
                before_commit.chunk,
                # what a killed run committed (copied before: runner.sync.tally)
                committed=skip,
                report_bytes=report.out.written,
                journal_bytes=spool.out.written if spool and spool.out else 0,
            )
    if withheld is not None:
        withheld.begin()
    try:
        with tuned_interpreter(), transaction() as unit:
            state = SiteState(
                unit.conn,
                tables,
                now,
                course_key=options.course_key,
                user_key=options.user_key,
                membership_component=options.membership_component,
                modifier=options.modifier,
                withheld=withheld,
                guarded=options.max_changes,
            )
            if journal is not None:
                state.journal.use(journal)
            recorded: set[tuple[str, int]] = set()

            def feed(conn: Connection) -> None:
                """The groups made so far recorded as the feed's (a chunk's)."""
                made = state.lookups.made - recorded
                if made:
                    feed_groups.record(conn, tables, made, now)
                    recorded.update(made)

            checked = False
            try:
                lines = control.lines() if diff is None else diff.lines(state, control)
                if skip:
                    lines = (line for line in lines if line.number > skip)
                size = batch_size(unit.conn.dialect.name)
                if chunker is not None and chunker.every.lines:  # a chunk ends a batch
                    size = min(size, chunker.every.lines)
                for batch in _batches(lines, size):
                    if control.header is not None and not checked:
                        command.header(state, control.header, options)
                        checked = True
                    command.prepare(state, batch)
                    faults.point("sync.loaded")
                    shown_lines = []
                    for line in batch:
                        state.journal.line = line.number
                        result = command.apply(state, line, options)
                        if state.lookups.warnings:
                            notes = [result.message] if result.message else []
                            result.message = "; ".join(notes + state.lookups.warnings)
                            state.lookups.warnings.clear()
                        shown = (
                            control.header.masked(line.raw, control.dialect, command.columns.secret)
                            if control.header is not None and command.columns.secret
                            else None
                        )
                        if shown == UNALIGNED and line.values is not None:
                            # a short line: a secret may sit in any column a message quotes
                            result.summary = hide_values(result.summary, line.values)
                            result.message = hide_values(result.message, line.values)
                        shown_lines.append(result.report())
                        if diff is not None and result.status != FAILED:
                            diff.keep(line)
                        if result.status == FAILED:
                            outcome.failed.append(
                                FailedLine(line.number, line.raw, result.message, shown)
                            )
                            outcome.partly += result.partly
                        elif result.status == CHANGED:
                            outcome.changed += 1
                        else:
                            outcome.unchanged += 1
                        if result.course is not None:  # failed: set when in part applied
                            outcome.courses[result.course.id] = result.course.key
                        if result.group is not None:
                            outcome.groups.append(result.group)
                    state.flush()
                    state.journal.flush()
                    report.write("\n".join(shown_lines) + "\n")
                    faults.point("sync.batch")
                    if on_batch is not None:
                        on_batch(control.digest.size, outcome.lines)
                    if chunker is not None and chunker.due(len(batch)):
                        assert isinstance(report, Report)
                        last = batch[-1].number
                        chunker.commit(unit, state, outcome, report, state.journal, last, feed)
                if diff is not None:
                    diff.ghosts(state, control.header, checked)
                    report.write(diff.note(outcome) + "\n")
                if data is None:  # a retry's lines are never a snapshot
                    snapshot.act_on_missing(state, command, options, outcome, report)
                state.finish()
                if withheld is None:
                    feed(unit.conn)
                else:
                    _preview_feed(state.lookups.made, withheld)
                if chunker is None:  # else checked before the first chunk
                    check_changes(state, options.max_changes)
                if data is None:
                    kept = (diff.digest(), diff.diffed) if diff is not None else ("", 0)
                    snapshot.record(state, options, now, *kept)
                keep_tally(state)
                outcome.journal = state.journal.span()
                # the file must still be the one read: one being written is left
                control.check_unchanged()
                if before_commit is not None:
                    read(outcome, control)
                    before_commit(unit.conn, outcome)
            except NotRead:
                state.close()
                unit.rollback()
                raise
            except ControlFileError as exc:
                state.close()
                unit.rollback()
                if withheld is not None:
                    withheld.rollback()
                if chunker is not None and chunker.committed:
                    raise  # not a rejection: lines are committed (below)
                reject(outcome, report, exc)
            finally:
                state.close()
            faults.point("sync.commit")
            with uninterrupted():  # a file committed is noted so, whatever signal comes
                unit.commit()
                faults.point("sync.committed")
                if chunker is not None:
                    chunker.done = True
                if isinstance(before_commit, Marking):
                    before_commit.committed = True
        if withheld is not None:
            withheld.commit()
        if diff is not None and outcome.error is None:
            diff.publish(outcome, report)
    except NotRead as exc:
        if chunker is None or not chunker.committed:
            raise
        raise StepError(f"{outcome.path.name}: {exc.message}") from None
    except ControlFileError as exc:  # after a chunk: not a rejection
        said = how_much(chunker, "nothing of it was applied")
        raise StepError(f"{outcome.path.name}: {exc} ({said})") from None
    except SQLAlchemyError as exc:
        reason = database_reason(exc)
        raise StepError(
            f"database error while applying {outcome.path.name}"
            f" ({how_much(chunker, 'nothing of it was applied')}): {reason}"
        ) from None
    except OSError as exc:
        where = exc.filename or outcome.path
        said = how_much(chunker, f"nothing of {outcome.path.name} was applied")
        raise StepError(f"{where}: {exc.strerror or exc} ({said})") from None
    finally:
        if chunker is not None and not chunker.done:
            chunker.abandon(report, journal)
        if withheld is not None:
            withheld.rollback()  # after commit(): nothing to undo
        if diff is not None:
            diff.discard()  # after publish(): nothing to remove
        read(outcome, control)


def _diff(
    command: SyncCommand,
    options: SyncOptions,
    dialect: Dialect,
    withheld: Withheld | None,
    data: bytes | None,
) -> Diff | None:
    """A snapshot step's diff against the snapshot it keeps (`diff: true`)."""
    if options.snapshot is None or options.snapshot.kept is None or data is not None:
        return None
    snapshot_command = cast("SnapshotCommand", command)  # its options offer `diff`
    return Diff(options.snapshot, snapshot_command, options, dialect, preview=withheld is not None)


def _preview_feed(made: set[tuple[str, int]], withheld: Withheld) -> None:
    """The groups and groupings the file made or declared, which a run records as the
    feed's with its changes, kept with the preview's withheld changes."""
    for item in sorted(made):
        withheld.put(withheld.feed_made, item, True)
