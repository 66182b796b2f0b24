"""write_retry_file: the header and every failed line, byte for byte, to fix and re-run."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.core.errors import StepError
from runner.core.text import plural
from runner.playbook.registry import RETRY_DEST
from runner.step.protocol import Action, Done, Plan
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
    from runner.step.ledger import Stored, StoredWrites, Writes
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


def _sources(outcome: FileOutcome, ledger: Stored) -> Iterator[Path]:
    """Where the control file's bytes still are: the file, then its archive."""
    yield outcome.path
    archive = ledger.archive_of(outcome.path)
    if isinstance(archive, Path):
        yield archive


def _read_back(source: Path) -> Iterator[bytes]:
    with open(source, "rb") as raw:
        packed = raw.read(2) == b"\x1f\x8b"
    with gzip.open(source, "rb") if packed else open(source, "rb") as handle:
        yield from handle  # physical lines, as the sync numbers them


def failed_bytes(outcome: FileOutcome, run: RunFacts, ledger: Stored) -> list[bytes]:
    """Each failed line's bytes: kept in memory by the run that synced the file; for
    `postsync post`, a line the record keeps masked (a users file's password) is read
    back from the control file, or its archive, checked against the sha256 the sync
    read."""
    if all(line.raw is not None for line in outcome.failed):
        return [line.raw for line in outcome.failed if line.raw is not None]
    wanted = {line.number for line in outcome.failed}
    for source in _sources(outcome, ledger):
        found: dict[int, bytes] = {}
        digest = hashlib.sha256()
        try:
            for number, line in enumerate(_read_back(source), start=1):
                digest.update(line)
                if number == 1 and line.startswith(_BOM):
                    line = line[len(_BOM) :]
                if number in wanted:
                    found[number] = line
        except (OSError, EOFError, gzip.BadGzipFile):
            continue
        if digest.hexdigest() == outcome.sha256 and len(found) == len(wanted):
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
    endings; a UTF-8 byte-order mark is kept). Fix the data in it and run a sync step
    on it: exactly those lines are applied.

    Parameters:
      dest (template, default: enrols_tryback_20261124-0100.csv beside enrols.csv):
        the retry file's name; the default is {{ file.parent }}/{{ file.stem }}_tryback_
        {{ now | strftime('%Y%m%d-%H%M') }}{{ file.suffix }} (one template, no space).
      on_conflict (suffix | fail | overwrite, default suffix): when a different file
        already has the name: insert .1, .2... before the extension, fail, or replace it.

    Example:
      - write_retry_file: {}
      - name: retry files for the SIS team
        write_retry_file:
          dest: "retry/{{ file.stem }}_tryback_{{ run.id }}{{ file.suffix }}"

    A line holding a password (a users file) is shown with it as *** (`--diff`), and the
    run record keeps it so, without its bytes: `postsync post` reads them back from the
    control file, or else its archive, checked against the sha256 the sync read.

    Guarantees: no more readable than the control file (0640 at most: a 0600 users
    file gives a 0600 retry file); nothing is written for a control file without failed
    lines; written
    atomically and verified; a file already holding the same lines counts as done; a
    different file is never silently replaced. Sync globs skip names containing
    `_tryback_` unless the step sets `include_retry_files: true` or names the file.
    """

    def configure(self, params: Mapping[str, Any], scope: StepScope) -> RetryConfig:
        raw = scope.render(params.get("dest", RETRY_DEST), "dest")
        return RetryConfig(scope.confine_file(raw, "dest"), params.get("on_conflict", "suffix"))

    def plan(
        self,
        config: Sequence[tuple[FileOutcome, RetryConfig]],
        run: RunFacts,
        ledger: StoredWrites,
        services: object,
    ) -> Plan:
        if not config:
            return Plan(skip_reason="no control file was processed")
        actions: list[Action] = []
        errors: list[str] = []
        present = clean = 0
        claimed: dict[Target, tuple[str, str]] = {}
        for outcome, cfg in config:
            if not outcome.failed:
                clean += 1
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
                        placed, partial(retry_chunks, outcome, lines), mode=private(outcome.mode)
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
        return Plan(actions, ", ".join(notes), errors=errors)

    def apply(
        self, actions: Sequence[Action], run: RunFacts, ledger: Writes, services: object
    ) -> Iterator[Done]:
        return apply_writes(actions, "retry file", ledger)
