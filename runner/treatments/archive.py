"""archive_control_files: a verified, timestamped copy of each processed control file."""

from __future__ import annotations

import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.core.errors import PlaybookError, StepError
from runner.core.text import plural
from runner.playbook.registry import ARCHIVE_DEST
from runner.step.protocol import Action, Done, Plan
from runner.storage.paths import FileState
from runner.treatments.files import (
    Output,
    Target,
    WriteJob,
    apply_writes,
    choose,
    content_sha256,
    file_chunks,
    find_identical,
    plan_writes,
    private,
)

if TYPE_CHECKING:
    from runner.record.model import FileOutcome
    from runner.step.facts import RunFacts
    from runner.step.ledger import Archives
    from runner.step.scope import StepScope


@dataclass(frozen=True)
class ArchiveConfig:
    target: Target
    gzipped: bool
    on_conflict: str


def existing_archive(outcome: FileOutcome, config: ArchiveConfig) -> Target | None:
    """An archive already holding exactly what the sync read, if there is one."""
    return find_identical(
        config.target, outcome.sha256, gzipped=config.gzipped, source=outcome.path
    )


class ArchiveControlFiles:
    """Copy each control file the run processed to a timestamped archive.

    The copy is byte for byte; it is read back and its sha256 compared with what the
    sync read before it takes its name. The archive is dated when it is stored (its age
    for purge_old_files); the control file's own modification time is kept in the run
    record and, compressed, in the gzip header.

    Parameters:
      dest (template, default "archives/{{ now | strftime('%Y%m%d-%H%M') }}_{{ file.name }}"):
        the archive's name, relative to the area (or under `roots:`), or an object
        `s3://bucket/key` under an `s3://bucket/prefix` of `roots:` (postsync[s3]).
      compress (none | gzip, default none): gzip appends ".gz" to the name.
      on_conflict (suffix | fail | overwrite, default suffix): when a different file
        already has the name: insert .1, .2... before the extension (20261124-0100_enrols.1.csv),
        fail the step, or replace it.

    Example:
      - archive_control_files:
          dest: "archives/{{ now | strftime('%Y/%m/%d-%H%M') }}_{{ file.name }}"
          compress: gzip

    In object storage the object is read back after the upload: its size and sha256
    must be what the sync read, or the step fails and the control file is kept.

    Guarantees: an archive is no more readable than its control file (0640 at most: a
    0600 users file gives 0600 archives, gzip or not); an archive already holding the
    same content counts as done (a second run changes nothing); a different file is
    never silently replaced; an archive is never its control file (a destination that
    is a control file, or that a sync step's glob matches, is refused before anything
    is changed); two control files of one run never share an archive (the second takes
    the next suffix, or the step fails before any change with on_conflict fail or
    overwrite); a control file changed since the sync read it is not archived (the step
    fails: the archive would not be what was synced); a control file that is gone is
    fine when an identical archive exists; delete_control_files deletes a control file
    only once its archive is verified; a destination in a `.postsync/` directory (this
    area's state, or a nested area's), or in another area (a directory holding a
    `.postsync/`: its files are its own), is refused before anything is changed; its
    temporary file, even in a `roots:` directory other areas archive into, is removed by
    no other run while it is being written.
    """

    def configure(self, params: Mapping[str, Any], scope: StepScope) -> ArchiveConfig:
        gzipped = params.get("compress", "none") == "gzip"
        raw = scope.render(params.get("dest", ARCHIVE_DEST), "dest")
        if gzipped:
            raw += ".gz"
        target = scope.confine_dest(raw, "dest")
        if isinstance(target, Path):
            rule = scope.run.control_glob(target)
            if rule is not None:
                raise PlaybookError(
                    [
                        scope.error(
                            f"the archive {scope.run.display(target)} would be a control file"
                            f" ({rule.label} reads it): an archive must be another file,"
                            " outside the sync's globs (e.g. archives/...)",
                            "dest",
                        )
                    ]
                )
        return ArchiveConfig(
            target=target,
            gzipped=gzipped,
            on_conflict=params.get("on_conflict", "suffix"),
        )

    def plan(
        self,
        config: Sequence[tuple[FileOutcome, ArchiveConfig]],
        run: RunFacts,
        ledger: Archives,
        services: object,
    ) -> Plan:
        if not config:
            return Plan(skip_reason="no control file was processed")
        actions: list[Action] = []
        errors: list[str] = []
        present = 0
        claimed: dict[Target, tuple[str, str]] = {}
        for outcome, cfg in config:
            name = run.display(outcome.path)
            try:
                try:
                    st = outcome.path.lstat()
                except FileNotFoundError:
                    found = existing_archive(outcome, cfg)
                    if found is None:
                        raise StepError(
                            f"{name} is gone and no archive of it was found"
                            f" at {run.display(cfg.target)}"
                        ) from None
                    ledger.add_archive(outcome.path, found)
                    present += 1
                    continue
                if not stat.S_ISREG(st.st_mode):
                    raise StepError(f"{name} is no longer a regular file; not archived")
                change = outcome.state.change(FileState.of(st)) if outcome.state else None
                if change:  # being written again: the archive would not be what was synced
                    raise StepError(
                        f"{name} {change} since the sync read it; not archived (the archive"
                        " would not be what was synced)"
                    )
                if content_sha256(outcome.path) != outcome.sha256:
                    raise StepError(
                        f"{name} changed since the sync read it; not archived"
                        " (the archive would not be what was synced)"
                    )
                placed = choose(
                    cfg.target,
                    outcome.sha256,
                    cfg.on_conflict,
                    run.display(cfg.target),
                    gzipped=cfg.gzipped,
                    mtime_ns=outcome.mtime_ns or st.st_mtime_ns,
                    source=outcome.path,
                    claimed=claimed,
                    owner=name,
                )
            except StepError as exc:
                errors.append(str(exc))
                continue
            except OSError as exc:  # a name too long for the filesystem...: this file only
                errors.append(f"{exc.filename or run.display(cfg.target)}: {exc.strerror}")
                continue
            if not isinstance(placed, Output):
                ledger.add_archive(outcome.path, placed)
                present += 1
                continue
            if run.check:  # what the run would write and verify
                ledger.add_archive(outcome.path, placed.path, planned=True)
            notes = [f"{st.st_size} bytes"]
            if cfg.gzipped:
                notes.append("gzip")
            if placed.replace:
                notes.append("replaces a different file")
            target = run.display(placed.path)
            actions.append(
                Action(
                    "archive",
                    f"{name} -> {target}",
                    ", ".join(notes),
                    data=WriteJob(
                        placed,
                        partial(file_chunks, outcome.path),
                        outcome.path.name,
                        partial(ledger.add_archive, outcome.path),
                        mode=private(stat.S_IMODE(st.st_mode)),
                    ),
                    diff=f"--- /dev/null\n+++ {target}\n@@ copy of {name}: {st.st_size} bytes,"
                    f" sha256 {outcome.sha256} @@\n",
                )
            )
        plan_writes(actions, run.check, ledger)
        notes = [plural(len(actions), "file") if actions else "nothing to archive"]
        if present:
            notes.append(f"{plural(present, 'file')} already archived")
        return Plan(actions, ", ".join(notes), errors=errors)

    def apply(
        self, actions: Sequence[Action], run: RunFacts, ledger: Archives, services: object
    ) -> Iterator[Done]:
        return apply_writes(actions, "archive", ledger)
