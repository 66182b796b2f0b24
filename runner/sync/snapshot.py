"""`mode: snapshot`: after a snapshot file's last line, what its scope holds that the
file does not list is acted on (`missing:`), each row a `missing:` line of the file's
report, its changes journaled (line null), counted by max_changes as the file's own;
the first snapshot of a step removes nothing unless the step says it may
(runner.db.snapshots)."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any, cast

from runner.core import faults
from runner.db import snapshots
from runner.sync.base import CHANGED, Course, LineResult, SyncOptions
from runner.sync.reader import ControlFileError

if TYPE_CHECKING:
    from runner.record.model import FileOutcome
    from runner.sync.command import SnapshotCommand, SyncCommand
    from runner.sync.report import Report
    from runner.sync.state import SiteState


#: what a report says of a row a snapshot acted on
MISSING = "missing from the snapshot"


def missed(summary: str, course: Course | None = None) -> LineResult:
    """The outcome of a row of the scope the snapshot does not list, acted on."""
    return LineResult(0, CHANGED, summary, MISSING, course)


class Listed:
    """What a snapshot's lines list (a part of the file's state, runner.sync.base.Part):
    the scopes they name (courses, groups, cohorts), and the users listed in each; for
    a users file, the usernames its lines name."""

    def __init__(self, site: SiteState) -> None:
        self.users: dict[int, set[int]] = {}
        #: the course of each scope (a group's)
        self.courses: dict[int, Course] = {}
        self.usernames: set[str] = set()
        #: a diffed snapshot (runner.sync.diffing): of the units (courses, groups,
        #: cohorts) the kept snapshot named (`known`), `missing` acts only on the rows
        #: its lines listed that the file no longer does (`only`: unit -> members, or
        #: 0 -> usernames); a unit it did not name is reconciled whole. None: a full
        #: reconcile, every row of the scope
        self.only: dict[int, set[Any]] | None = None
        self.known: set[int] = set()

    def named(self, scope: int, course: Course | None = None) -> None:
        self.users.setdefault(scope, set())
        if course is not None:
            self.courses[scope] = course

    def ghost(self, scope: int, member: Any, course: Course | None = None) -> None:
        """A row the kept snapshot listed and the file no longer does."""
        assert self.only is not None
        self.only.setdefault(scope, set()).add(member)
        if course is not None:
            self.courses.setdefault(scope, course)

    def may_act(self, scope: int, member: Any) -> bool:
        """Whether `missing` may act on this row of the scope the file does not list."""
        only = self.only
        return only is None or scope not in self.known or member in only.get(scope, ())

    def scopes(self, units: list[int]) -> list[int]:
        """Of the scope's units, those `missing` may act on."""
        if self.only is None:
            return units
        return [u for u in units if u in self.only or u not in self.known]

    def named_scopes(self) -> list[int]:
        """The units the file names, and those of its ghosts, that `missing` may act on."""
        if self.only is None:
            return sorted(self.users)
        return self.scopes(sorted(set(self.users) | set(self.only)))

    def user(self, scope: int, user: int) -> None:
        self.users.setdefault(scope, set()).add(user)

    def flush(self) -> None:
        pass

    def finish(self) -> None:
        pass


def act_on_missing(
    state: SiteState,
    command: SyncCommand,
    options: SyncOptions,
    outcome: FileOutcome,
    report: IO[str] | Report,
) -> None:
    """The rows the snapshot misses, acted on (in the file's transaction); a first
    snapshot that would act on any is rejected whole (ControlFileError)."""
    snapshot = options.snapshot
    if snapshot is None:
        return
    state.journal.line = 0  # no line made these changes
    missing = cast("SnapshotCommand", command).missing  # its options offer `mode`
    for results in missing(state, options):
        outcome.missing += sum(r.status == CHANGED for r in results)
        outcome.courses.update((r.course.id, r.course.key) for r in results if r.course)
        state.flush()
        state.journal.flush()
        if results:
            report.write("\n".join(r.report() for r in results) + "\n")
        faults.point("sync.missing")
    if not outcome.missing or snapshot.first:
        return
    state.writes.wait()
    if not snapshots.taken_before(state.raw.conn, snapshot.step):
        raise ControlFileError(
            0,
            f"the first snapshot this step applies to the site would act on"
            f" {outcome.missing:,} row{'' if outcome.missing == 1 else 's'} it does not list"
            f" (missing: {snapshot.missing});"
            " nothing applied: check that the file is the whole truth for its scope, then"
            " set first_snapshot: apply on the step for one run",
        )


def record(
    state: SiteState, options: SyncOptions, now: int, base: str = "", diffed: int = 0
) -> None:
    """A real run's snapshot, recorded as the step's (in the file's transaction), with
    the digest of the snapshot a diffing step keeps and its runs diffed since a full
    reconcile (runner.sync.diffing)."""
    if options.snapshot is not None and state.withheld is None:
        state.writes.wait()
        step, run_id = options.snapshot.step, options.snapshot.run_id
        snapshots.record(state.raw.conn, step, run_id, now, base, diffed)
