"""A sync step in `postsync retry RECORD`: the failed lines of the run the record is
of, each control file's through the step that applied it (the same command, encoding
and separator as then, the step's options as the playbook gives them now), in one
transaction per control file, as the step applies a file; nothing is listed, so
min_files and max_age_hours do not apply.

A line a later retry of the same lines applied is not retried again: it is found as
not failing any more in that retry's record (runner.record.lineage). A retry killed
after a file's commit is recovered as a killed run's files are: its marker, committed
with the lines, names the bytes applied, and the next retry of the same lines takes
their outcome from it instead of applying them again (runner.sync.recover).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from runner.core.errors import FilesRejected
from runner.core.text import plural
from runner.record.lineage import later_attempts, still_failing
from runner.step.protocol import Action, Done
from runner.sync.retry_input import Unavailable, line_bytes, retry_input
from runner.sync.tally import FilesTally, apply_file

if TYPE_CHECKING:
    from runner.record.model import FileOutcome
    from runner.step.facts import RunFacts
    from runner.step.ledger import SyncOutcomes
    from runner.step.services import SyncServices
    from runner.sync.config import SyncConfig


def marker_key(config: SyncConfig, retried: FileOutcome) -> str:
    """The step as the marker of a retry's lines names it: never the step's own key (a
    killed run's marker of the control file itself is never taken for a retry's, nor
    the other way round), and one per control file the lines come from."""
    return f"{config.key} (retry of {retried.feed[1]})"


def run(
    config: SyncConfig,
    run: RunFacts,
    ledger: SyncOutcomes,
    services: SyncServices,
    emit: Callable[[Done], None],
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[str, str]:
    """Apply again the failed lines of the retried run's files that this step applied,
    adding each file's outcome to the ledger; returns (status, detail)."""
    from runner.record.model import FileOutcome
    from runner.sync import SYNC_COMMANDS, recover

    retry = run.retry
    assert retry is not None
    retried = retry.files.get(config.key, ())
    if not retried:
        return "skipped", f"no failed line of run {retry.run_id} is this step's"
    attempts = later_attempts(run.runs_dir, retry, run.run_id)
    command = SYNC_COMMANDS[config.command]
    options = config.options
    engine = tables = None
    tally = FilesTally()
    for old in retried:
        shown = run.display(old.path)
        failing = still_failing(old, attempts)
        if not failing:
            attempt = attempts[(str(old.feed[0]), old.feed[1])]
            note = f"its failed lines of run {retry.run_id} were applied by run {attempt.run_id}"
            emit(Done(Action("skip", shown, note)))
            continue
        try:
            found = line_bytes(old, failing, command.columns.secret, run.area, run.roots)
            data = retry_input(old, failing, found)
        except Unavailable as exc:
            emit(tally.rejects(shown, str(exc)))
            continue
        if engine is None or tables is None:
            engine, tables = services.database()
            recover.load(run, ledger.recovery, engine)
        key = marker_key(config, old)
        number = len(ledger.files) + 1
        marked = recover.recovered(
            run,
            ledger.recovery,
            services,
            engine,
            old.path,
            None,
            key,
            number,
            fingerprinted=(len(data), hashlib.sha256(data).hexdigest()),
        )
        # a retry's lines are never committed in chunks: no marker says where to resume
        outcome = marked if isinstance(marked, FileOutcome) else None
        if outcome is None:
            outcome = FileOutcome(
                old.command,
                old.path,
                old.encoding,
                old.separator,
                mode=old.mode,
                retry_of=retry.run_id,
                feed_sha256=old.feed[1],
                archive=old.archive,
            )
            apply_file(
                run,
                ledger,
                services,
                tables,
                command,
                options,
                outcome,
                number=number,
                key=key,
                max_line_bytes=config.max_line_bytes,
                data=data,
            )
        outcome.step = config.key  # the marker named the retry's own key
        emit(tally.add(ledger, outcome, shown))
    rejected = tally.rejection("nothing of {what} retried")
    if rejected is not None:
        raise FilesRejected(rejected)
    if not tally.files:
        return "skipped", f"nothing left to retry of run {retry.run_id}"
    detail = (
        f"{plural(tally.files, 'file')}, {plural(tally.lines, 'line')} of run {retry.run_id}"
        " retried"
    )
    return tally.status, detail
