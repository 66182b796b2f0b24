"""delete_control_files: remove the control files this run processed, once safe."""

from __future__ import annotations

import stat
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.core.errors import PlaybookError
from runner.core.text import plural
from runner.step.context import template_context
from runner.step.facts import file_context
from runner.step.protocol import Action, Done, Plan, apply_each
from runner.step.scope import StepScope
from runner.storage.paths import DirFds, FileState, identity, unlink_regular
from runner.treatments.archive import ArchiveControlFiles, existing_archive
from runner.treatments.files import Target, content_sha256, deletion_diff

if TYPE_CHECKING:
    from runner.record.model import FileOutcome
    from runner.step.facts import RunFacts
    from runner.step.ledger import Stored
    from runner.step.services import ObjectStore

ARCHIVE = "archive_control_files"


def _verified_archive(
    run: RunFacts, ledger: Stored, store: ObjectStore, outcome: FileOutcome
) -> Target | None:
    """An archive holding exactly what the sync read: the one this run made (or, in a
    preview, would make), else one found under any archive step's names."""
    archiver = ArchiveControlFiles()
    made = ledger.archive_of(outcome.path)
    if made is not None:
        if ledger.archive_planned(outcome.path):
            return made  # planned by the preview's archive step
        if content_sha256(made, gzipped=made.name.endswith(".gz")) == outcome.sha256:
            return made
    for step in run.playbook.post_treatments:
        if step.kind != ARCHIVE:
            continue
        extra = {"file": file_context(outcome.path, outcome.command)}
        base = template_context(run, ledger)
        scope = StepScope(run, store.storage, step, base, extra)
        try:
            config = archiver.configure(step.params, scope)
        except PlaybookError:
            continue
        found = existing_archive(outcome, config)
        if found is not None:
            return found
    return None


class DeleteControlFiles:
    """Delete the control files this run processed, and nothing else.

    When the playbook archives control files (it has an archive_control_files step), a
    file is deleted only once an archive holding exactly what the sync read is verified
    on disk; otherwise it stays and the step fails. A file whose content changed since
    the sync read it (a new feed dropped under the same name) is kept and reported; so
    is a file the sync rejected (nothing of it was applied).

    Parameters: none.

    Example:
      - delete_control_files: {}
      - name: delete enrolment files only
        delete_control_files: {}
        when: file.command == 'enrolments'

    Guarantees: never a file the run did not process; never a file replaced or modified
    since the sync read it (device, inode, size, mtime and ctime checked again at the
    deletion); symlinks are never followed nor deleted; a file already gone
    is nothing to do (a second run changes nothing).
    """

    def configure(self, params: Mapping[str, Any], scope: StepScope) -> None:
        return None

    def plan(
        self,
        config: Sequence[tuple[FileOutcome, None]],
        run: RunFacts,
        ledger: Stored,
        services: ObjectStore,
    ) -> Plan:
        if not config:
            return Plan(skip_reason="no control file was processed")
        archives = any(s.kind == ARCHIVE for s in run.playbook.post_treatments)
        actions: list[Action] = []
        errors: list[str] = []
        kept: list[str] = []
        gone = 0
        seen: set[Path] = set()
        for outcome, _ in config:
            path = outcome.path
            name = run.display(path)
            if path in seen:
                continue
            seen.add(path)
            if outcome.error:
                kept.append(f"{name} (rejected by the sync)")
                continue
            try:
                st = path.lstat()
            except FileNotFoundError:
                gone += 1
                continue
            if not stat.S_ISREG(st.st_mode):
                kept.append(f"{name} (no longer a regular file)")
                continue
            change = outcome.state.change(FileState.of(st)) if outcome.state else None
            if change:
                kept.append(f"{name} ({change} since the sync read it)")
                continue
            if content_sha256(path) != outcome.sha256:
                kept.append(f"{name} (changed since the sync read it)")
                continue
            if archives and _verified_archive(run, ledger, services, outcome) is None:
                errors.append(f"{name} kept: no verified archive of it")
                continue
            when = datetime.fromtimestamp(st.st_mtime, run.zone).strftime("%Y-%m-%d %H:%M")
            actions.append(
                Action(
                    "delete",
                    name,
                    "archived" if archives else "",
                    data=(path.parent, path.name, identity(st), outcome.state),
                    diff=deletion_diff(name, st, when),
                )
            )
        notes = [plural(len(actions), "file") if actions else "nothing to delete"]
        if gone:
            notes.append(f"{plural(gone, 'file')} already gone")
        if kept:
            notes.append(f"kept {', '.join(kept)}")
        return Plan(actions, ", ".join(notes), errors=errors)

    def apply(
        self, actions: Sequence[Action], run: RunFacts, ledger: object, services: object
    ) -> Iterator[Done]:
        directories: dict[Path, DirFds] = {}

        def delete(action: Action) -> str:
            parent, name, expected, state = action.data
            fds = directories.get(parent)
            if fds is None:
                fds = directories[parent] = DirFds(parent)
            return "" if unlink_regular(fds, (name,), expected, state) else "already gone"

        try:
            yield from apply_each(actions, delete, "deletion")
        finally:
            for fds in directories.values():
                fds.close()
