"""What a run accumulates as its steps go: each control file's outcome, the files
written, the archives, the groups deleted, how each step ended (its status, detail and
error), the leftovers of a killed run it cleaned, the files killed runs applied, a
preview's withheld changes.

Steps change it only through its named methods. Each step declares, by the protocol
its signature takes, what it reads (`Outcomes`) and what it may add (`Writes`,
`RetryFiles`, `Archives`, `GroupDeletions`, `SyncOutcomes`). In a preview, `written`
holds what the run would write (the treatments' plans add it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from runner.record.model import FileOutcome
from runner.step.preview import Withheld
from runner.step.recovery import Recovery
from runner.storage.remote import RemotePath

#: where a control file was archived: a local path, or an object
Target = Path | RemotePath


@dataclass(frozen=True)
class StepOutcome:
    """How a step ended: its status (ok, changed, skipped, failed), its detail (what it
    did, or why it was skipped) and, when it failed, its error."""

    status: str
    detail: str = ""
    error: str | None = None


class Outcomes(Protocol):
    """What a run did so far, read only."""

    @property
    def files(self) -> Sequence[FileOutcome]: ...
    @property
    def statuses(self) -> Mapping[str, str]: ...
    @property
    def steps(self) -> Mapping[str, StepOutcome]: ...
    @property
    def lines_ok(self) -> int: ...
    @property
    def failed_lines(self) -> int: ...
    @property
    def failed(self) -> bool: ...
    @property
    def step_failed(self) -> bool: ...
    @property
    def problems(self) -> Sequence[str]: ...
    @property
    def recovery(self) -> Recovery: ...
    def database_changes(self) -> int: ...


class Writes(Outcomes, Protocol):
    """A step that writes files (reports, retry files): never purged by this run."""

    def add_written(self, paths: Iterable[Path]) -> None: ...


class Archives(Writes, Protocol):
    """archive_control_files: each control file's archive, verified or planned."""

    def archive_of(self, path: Path) -> Target | None: ...
    def archive_planned(self, path: Path) -> bool: ...
    def add_archive(self, path: Path, target: Target, *, planned: bool = False) -> None: ...


class Stored(Outcomes, Protocol):
    """What the run stored, read only (delete_control_files, purge_old_files)."""

    @property
    def written(self) -> frozenset[Path]: ...
    def archive_of(self, path: Path) -> Target | None: ...
    def archive_planned(self, path: Path) -> bool: ...
    def archived(self) -> Iterable[Target]: ...


class RetryFiles(Stored, Writes, Protocol):
    """write_retry_file: where the run archived (to read masked lines back), and each
    control file's retry file, written or found already written."""

    def add_retry_file(self, path: Path, target: Path) -> None: ...


class GroupDeletions(Outcomes, Protocol):
    """clean_empty_groups: the groups it deleted (a preview: would), over the preview's
    withheld changes."""

    @property
    def withheld(self) -> Withheld | None: ...
    def count_groups_deleted(self, count: int) -> None: ...


class SyncOutcomes(Outcomes, Protocol):
    """A sync step: each control file's outcome, over the preview's withheld changes."""

    @property
    def withheld(self) -> Withheld | None: ...
    def add_outcome(self, outcome: FileOutcome) -> None: ...


class Ledger:
    """The run's accumulated results (the concrete type of every protocol above)."""

    def __init__(self, *, preview: bool, files: Iterable[FileOutcome] = ()) -> None:
        self._files: list[FileOutcome] = list(files)
        self._written: set[Path] = set()
        #: control file -> its archive: verified (real run) or planned (preview)
        self._archives: dict[Path, Target] = {}
        #: control files whose archive a preview planned (not written, taken as verified)
        self._planned: set[Path] = set()
        #: control file -> its retry file (written, or found already written)
        self._retry_files: dict[Path, Path] = {}
        self._groups_deleted = 0
        self._steps: dict[str, StepOutcome] = {}
        self._cleaned: tuple[tuple[str, str], ...] = ()
        self._problems: list[str] = []
        self._sync_complete = False
        #: the files killed runs of this area applied (runner.step.recovery)
        self.recovery = Recovery()
        #: a preview's sync writes, kept in memory instead (runner.step.preview)
        self.withheld: Withheld | None = Withheld() if preview else None

    # -- control files
    @property
    def files(self) -> Sequence[FileOutcome]:
        """What each sync step did with each control file, in order."""
        return tuple(self._files)

    @property
    def file_count(self) -> int:
        return len(self._files)

    def add_outcome(self, outcome: FileOutcome) -> None:
        self._files.append(outcome)

    @property
    def lines_ok(self) -> int:
        return sum(f.changed + f.unchanged + f.same for f in self._files if not f.error)

    @property
    def failed_lines(self) -> int:
        return sum(len(f.failed) for f in self._files)

    def database_changes(self) -> int:
        """The changes this run made to the database (a preview: would make): lines a
        sync file changed (in part, for a failed line), groups and groupings deleted."""
        changed = sum(f.changed + f.partly for f in self._files if not f.error)
        return changed + self._groups_deleted

    # -- steps
    @property
    def statuses(self) -> Mapping[str, str]:
        """Each step's status so far, by its rendered name."""
        return {name: step.status for name, step in self._steps.items()}

    @property
    def steps(self) -> Mapping[str, StepOutcome]:
        """How each step ended so far, by its rendered name."""
        return dict(self._steps)

    def end_step(self, name: str, status: str, detail: str = "", error: str | None = None) -> None:
        """Step `name` ended (or its end changed: a sync step whose record could not be
        saved failed after all)."""
        self._steps[name] = StepOutcome(status, detail, error)

    @property
    def failed(self) -> bool:
        """A control-file line or a step failed so far, or something outside the steps
        (`problems`)."""
        return bool(
            self.failed_lines > 0
            or any(s.status == "failed" for s in self._steps.values())
            or self._problems
        )

    @property
    def step_failed(self) -> bool:
        """A step failed so far, or something outside the steps (`problems`): not a
        control-file line alone."""
        return any(s.status == "failed" for s in self._steps.values()) or bool(self._problems)

    @property
    def problems(self) -> Sequence[str]:
        """What is wrong outside the steps (a --metrics-file that cannot be written): the
        run goes on, tells of them and exits 3."""
        return tuple(self._problems)

    def add_problem(self, problem: str) -> None:
        self._problems.append(problem)

    @property
    def sync_complete(self) -> bool:
        """Every sync step of the run ran (a record without it is refused by `post`)."""
        return self._sync_complete

    def set_sync_complete(self, complete: bool) -> None:
        self._sync_complete = complete

    # -- files written
    @property
    def written(self) -> frozenset[Path]:
        """Files this run stored (archives, reports, retry files): never purged by it."""
        return frozenset(self._written)

    def add_written(self, paths: Iterable[Path]) -> None:
        self._written.update(paths)

    def archive_of(self, path: Path) -> Target | None:
        return self._archives.get(path)

    def archive_planned(self, path: Path) -> bool:
        """The archive of `path` is a preview's plan (not written, taken as verified)."""
        return path in self._planned

    def add_archive(self, path: Path, target: Target, *, planned: bool = False) -> None:
        self._archives[path] = target
        if planned:
            self._planned.add(path)

    def archived(self) -> Iterable[Target]:
        return tuple(self._archives.values())

    def add_retry_file(self, path: Path, target: Path) -> None:
        self._retry_files[path] = target

    def stored(self, outcome: FileOutcome) -> tuple[str | None, str | None]:
        """Where this run put (or found) a control file's archive and retry file, for
        its record (a preview's planned archive is not one)."""
        path = outcome.path
        archive = None if path in self._planned else self._archives.get(path)
        retry = self._retry_files.get(path)
        return (
            None if archive is None else str(archive),
            None if retry is None else str(retry),
        )

    # -- the database
    @property
    def groups_deleted(self) -> int:
        """Groups and groupings clean_empty_groups deleted (a preview: would delete)."""
        return self._groups_deleted

    def count_groups_deleted(self, count: int) -> None:
        self._groups_deleted += count

    # -- before the steps
    @property
    def cleaned(self) -> tuple[tuple[str, str], ...]:
        """What a killed run of the area left, removed before the steps (a preview:
        would be), as (target, detail) (runner.engine.leftovers)."""
        return self._cleaned

    def set_cleaned(self, cleaned: Iterable[tuple[str, str]]) -> None:
        self._cleaned = tuple(cleaned)
