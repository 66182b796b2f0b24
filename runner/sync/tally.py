"""What a sync step and a retry's sync step share: applying one control file's lines in
its own transaction, with its report and its marker, and adding up the files' outcomes
into the step's status."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runner.step.protocol import Action, Done

if TYPE_CHECKING:
    from runner.db.tables import MoodleTables
    from runner.record.journal import Spool
    from runner.record.model import FileOutcome
    from runner.step.facts import RunFacts
    from runner.step.ledger import SyncOutcomes
    from runner.step.services import SyncServices
    from runner.storage.paths import FileState
    from runner.sync.base import SyncOptions
    from runner.sync.chunks import Resume
    from runner.sync.command import SyncCommand
    from runner.sync.report import Report


def apply_file(
    run: RunFacts,
    ledger: SyncOutcomes,
    services: SyncServices,
    tables: MoodleTables,
    command: SyncCommand,
    options: SyncOptions,
    outcome: FileOutcome,
    *,
    number: int,
    key: str,
    max_line_bytes: int,
    expected: FileState | None = None,
    data: bytes | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    resume: Resume | None = None,
) -> None:
    """Apply `outcome.path` (or `data`, a retry's lines) in one transaction (or in
    chunks: options.commit_every), its report numbered `number`; a real run commits the
    marker `key` with the lines. `resume`: the file's lines a killed run committed in
    chunks (`outcome` is theirs): the rest applied, after their report and journal."""
    from runner.record import journal
    from runner.sync.apply import sync_file
    from runner.sync.journal import FileJournal
    from runner.sync.recover import Marking
    from runner.sync.report import Report

    outcome.report = services.report_path(outcome.path, number)
    part = journal.part_of(outcome.report)
    with (
        Report(outcome.report, run.display(outcome.report)) as report,
        journal.spool(part, run.display(part)) as spool,
    ):
        if resume is not None:
            _continue(run, resume, report, spool, outcome)
        marking = Marking(run, report, key, spool, resume.marker if resume else None)
        try:
            sync_file(
                services.transaction,
                tables,
                command,
                outcome,
                options,
                now=int(run.now.timestamp()),
                report=report,
                expected=expected,
                max_line_bytes=max_line_bytes,
                on_batch=on_batch,
                withheld=ledger.withheld,
                # the journal part published with the report, before the marker
                before_commit=None if run.check else marking,
                data=data,
                journal=FileJournal(spool, run.display(outcome.path)),
                resume=resume,
            )
        except BaseException:
            exposed = spool.out is not None and spool.out.exposed  # runner.sync.chunks'
            if spool.published and not exposed and not marking.committed:
                part.unlink(missing_ok=True)  # its transaction failed: no change to tell
            if marking.marker is not None:  # a chunk is committed: the file is unfinished
                ledger.recovery.unfinished.add(marking.marker)
            raise
        if outcome.error is not None:
            if spool.published:
                part.unlink(missing_ok=True)
            return
        if outcome.journal is not None:
            journal.publish(spool)  # a preview's (a run's is published already)
            where = None if run.check else run.display(part)
            outcome.journal_text = journal.lines_text(spool.shown, outcome.journal, where)


def _continue(
    run: RunFacts, resume: Resume, report: Report, spool: Spool, outcome: FileOutcome
) -> None:
    """A file a killed run committed in chunks: its report and journal lines so far,
    copied from that run's (what its last committed chunk counted)."""
    from runner.record.journal import part_of
    from runner.sync.recover import copy_start

    out = report.out
    if not copy_start(resume.source, run.runs_dir, resume.report, out.write_all):
        out.rewind(0)
        gone = [f"{outcome.path.name}: lines 1 to {resume.line:,} applied by a killed run"]
        gone += [f"line {f.number}: failed: {f.message}" for f in outcome.failed]
        report.write("\n".join(gone) + " (their report is gone)\n")
    spool.count, spool.kinds = resume.count, Counter(resume.kinds)
    source = None if resume.source is None else part_of(resume.source)
    journal = spool.out
    if (
        resume.journal
        and journal is not None
        and not copy_start(source, run.runs_dir, resume.journal, journal.write_all)
    ):
        journal.rewind(0)
        outcome.journal_error = (
            "the journal part of the killed run that applied its first lines cannot be read"
        )


@dataclass
class FilesTally:
    """The files a step applied: what changed, how many lines, which were rejected."""

    changed: bool = False
    files: int = 0
    lines: int = 0
    failed: int = 0
    rejected: list[str] = field(default_factory=list)
    #: files applied whose lines of the change journal could not be written
    unjournaled: list[str] = field(default_factory=list)

    def rejects(self, shown: str, why: str) -> Done:
        """A file nothing of which was applied."""
        self.rejected.append(f"{shown}: {why}")
        return Done(Action("sync", shown, f"rejected: {why}"))

    def add(self, ledger: SyncOutcomes, outcome: FileOutcome, shown: str) -> Done:
        """A file's outcome, added to the ledger; the item to show for it (the outcome
        rides along for the text output: each file's lines under it)."""
        ledger.add_outcome(outcome)
        if outcome.error:
            self.rejected.append(f"{shown}: {outcome.error}")
        else:
            self.changed |= outcome.changed > 0 or outcome.missing > 0
            self.files += 1
            self.lines += outcome.lines
            self.failed += len(outcome.failed)
        if outcome.journal_error:
            self.unjournaled.append(f"{shown}: {outcome.journal_error}")
        return Done(
            Action("sync", shown, outcome.summary(), data=outcome, diff=outcome.journal_text)
        )

    def rejection(self, what_happened: str) -> str | None:
        """The message of the files rejected, and of those applied whose journal lines
        could not be written, if any (the step then fails once it applied the others: the
        run goes on with them)."""
        failures = []
        if self.rejected:
            what = "it" if len(self.rejected) == 1 else "each"
            failures.append("; ".join(self.rejected) + f" ({what_happened.format(what=what)})")
        if self.unjournaled:
            failures.append(
                "; ".join(self.unjournaled) + " (applied, but its changes are not in the"
                " run's change journal)"
            )
        return "; ".join(failures) or None

    @property
    def status(self) -> str:
        """`changed`; `warning` when nothing changed but lines failed (what the files ask
        is not done, but the step did its work: the run goes on, and exits 2); `ok`."""
        return "changed" if self.changed else "warning" if self.failed else "ok"
