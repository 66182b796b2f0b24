"""write_retry_file: the header and every failed line, byte for byte, to fix and re-run."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.core.errors import StepError
from runner.core.text import plural
from runner.playbook.registry import RETRY_DEST
from runner.record.lineage import taken_back
from runner.record.readback import read_lines
from runner.step.protocol import Action, Done, Plan
from runner.storage.paths import confinement_error
from runner.treatments.files import (
    Output,
    Target,
    WriteJob,
    apply_writes,
    choose,
    chunks_sha256,
    new_file_diff,
    plan_writes,
    private,
)

if TYPE_CHECKING:
    from runner.record.model import FileOutcome
    from runner.step.facts import RunFacts
    from runner.step.ledger import RetryFiles, Stored
    from runner.step.scope import StepScope

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class RetryConfig:
    target: Path
    on_conflict: str


def retry_chunks(outcome: FileOutcome, lines: Sequence[bytes]) -> Iterator[bytes]:
    """The control file's BOM and header line, then each failed line, as read."""
    if outcome.bom:
        yield _BOM
    yield outcome.header
    yield from lines


def _sources(outcome: FileOutcome, run: RunFacts, ledger: Stored) -> Iterator[Path]:
    """Where the control file's bytes still are: the file, then its archive (this
    run's, or the one its record names, when it is where postsync may have put it)."""
    yield outcome.path
    archive = ledger.archive_of(outcome.path)
    if isinstance(archive, Path):
        yield archive
    elif archive is None and outcome.archive and os.path.isabs(outcome.archive):
        named = outcome.archive
        real = Path(os.path.realpath(named))
        if confinement_error(named, real, run.area, run.roots) is None:
            yield Path(named)


def failed_bytes(outcome: FileOutcome, run: RunFacts, ledger: Stored) -> list[bytes]:
    """Each failed line's bytes: kept in memory by the run that synced the file; for
    `postsync post`, a line the record keeps masked (a users file's password) is read
    back from the control file, or its archive, checked against the sha256 the sync
    read (a retry's lines keep the numbers of the control file they come from)."""
    if all(line.raw is not None for line in outcome.failed):
        return [line.raw for line in outcome.failed if line.raw is not None]
    _path, sha256 = outcome.feed
    for source in _sources(outcome, run, ledger):
        found = read_lines(source, sha256, [line.number for line in outcome.failed])
        if found is not None:
            return [found[line.number] for line in outcome.failed]
    raise StepError(
        f"the failed lines of {run.display(outcome.path)} hold passwords, which the run"
        " record does not keep, and neither the control file nor its archive is there as"
        " the sync read it: no retry file (write it with the run itself)"
    )


class WriteRetryFile:
    """Write a retry ("tryback") file holding every failed line of each control file.

    The file has the control file's structure: its header line, then each failed line
    in order, byte for byte as read (same encoding, separator, quoting and line
    endings; a UTF-8 byte-order mark is kept). Once the site is fixed, `postsync
    retry RECORD` applies exactly those lines again; or fix the data in the file and
    drop it in the area, where a step with `include_retry_files: true` reads it.

    Parameters:
      dest (template, default: enrols_tryback_20261124-0100.csv beside enrols.csv):
        the retry file's name; the default is {{ file.parent }}/{{ file.feed_stem }}
        _tryback_{{ now | strftime('%Y%m%d-%H%M') }}{{ file.suffix }} (one template, no
        space). `file.feed_stem` is the feed's own stem: a retry file that fails again
        (enrols_tryback_20261204-0230.csv) gets a new stamp, never a second _tryback_
        (enrols_tryback_20261205-0230.csv).
      on_conflict (suffix | fail | overwrite, default suffix): when a different file
        already has the name: insert .1, .2... before the extension, fail, or replace it.

    Example:
      - write_retry_file: {}
      - name: retry files for the SIS team
        write_retry_file:
          dest: "retry/{{ file.feed_stem }}_tryback_{{ run.id }}{{ file.suffix }}"

    A line holding a password (a users file) is shown with it as *** (`--diff`), and the
    run record keeps it so, without its bytes: `postsync post` reads them back from the
    control file, or else its archive, checked against the sha256 the sync read. The
    record names the retry file it wrote (`postsync retry` reads such lines back from
    it when the control file and its archive are gone).

    Guarantees: no more readable than the control file (0640 at most: a 0600 users
    file gives a 0600 retry file); nothing is written for a control file without failed
    lines; written
    atomically and verified; a file already holding the same lines counts as done; a
    different file is never silently replaced. Sync globs skip names containing
    `_tryback_` unless the step names the file, or sets `include_retry_files: true`
    (then it reads the retry files of its own files, before them).
    """

    def configure(self, params: Mapping[str, Any], scope: StepScope) -> RetryConfig:
        raw = scope.render(params.get("dest", RETRY_DEST), "dest")
        return RetryConfig(scope.confine_file(raw, "dest"), params.get("on_conflict", "suffix"))

    def plan(
        self,
        config: Sequence[tuple[FileOutcome, RetryConfig]],
        run: RunFacts,
        ledger: RetryFiles,
        services: object,
    ) -> Plan:
        if not config:
            return Plan(skip_reason="no control file was processed")
        actions: list[Action] = []
        errors: list[str] = []
        present = clean = taken = 0
        # the run's control files are no retry file's name: one read tonight (a retry
        # file dropped back, named as tonight's would be) is deleted once applied
        claimed: dict[Target, tuple[str, str]] = {
            f.path: ("", f"the control file {run.display(f.path)}") for f in ledger.files
        }
        for outcome, cfg in config:
            if not outcome.failed:
                clean += 1
                continue
            if outcome.retry_file is not None and (
                taken_back(run.runs_dir, outcome.retry_file, run.run_id) is not None
            ):
                # written by this run (`post` of its record), since taken back by a run
                # that applied its lines: writing it again would have them applied twice
                taken += 1
                continue
            try:
                lines = failed_bytes(outcome, run, ledger)
                sha = chunks_sha256(retry_chunks(outcome, lines))
                placed = choose(
                    cfg.target,
                    sha,
                    cfg.on_conflict,
                    run.display(cfg.target),
                    claimed=claimed,
                    owner=f"the retry file of {run.display(outcome.path)}",
                )
            except StepError as exc:
                errors.append(str(exc))
                continue
            except OSError as exc:  # a name too long for the filesystem...: this file only
                errors.append(f"{exc.filename or run.display(cfg.target)}: {exc.strerror}")
                continue
            if not isinstance(placed, Output):
                present += 1
                if isinstance(placed, Path):
                    ledger.add_retry_file(outcome.path, placed)
                continue
            diff = None
            if run.diff:  # a password as ***
                header = outcome.header.decode(outcome.encoding, "replace")
                shown = [line.text(outcome.encoding) for line in outcome.failed]
                diff = new_file_diff(run.display(placed.path), [header, *shown])
            detail = f"{plural(len(outcome.failed), 'failed line')} of {run.display(outcome.path)}"
            if placed.replace:
                detail += ", replaces a different file"
            actions.append(
                Action(
                    "write",
                    run.display(placed.path),
                    detail,
                    data=WriteJob(
                        placed,
                        partial(retry_chunks, outcome, lines),
                        mode=private(outcome.mode),
                        published=partial(ledger.add_retry_file, outcome.path),
                    ),
                    diff=diff,
                )
            )
        plan_writes(actions, run.check, ledger)
        notes = [plural(len(actions), "retry file") if actions else "nothing to write"]
        if clean:
            notes.append(f"{plural(clean, 'file')} without failed lines")
        if present:
            notes.append(f"{plural(present, 'retry file')} already written")
        if taken:
            notes.append(f"{plural(taken, 'retry file')} already taken back and applied")
        return Plan(actions, ", ".join(notes), errors=errors)

    def apply(
        self, actions: Sequence[Action], run: RunFacts, ledger: RetryFiles, services: object
    ) -> Iterator[Done]:
        return apply_writes(actions, "retry file", ledger)
