"""What a sync command is: a control-file kind, its columns, and how a line applies.

Its step options' JSON Schema is in the registry (runner.playbook.registry).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from runner.sync.base import Course, LineResult, SyncOptions
from runner.sync.reader import Columns, DataLine, Header
from runner.sync.state import SiteState


class SyncCommand(Protocol):
    """A control-file kind. Its docstring documents its columns (README reference)."""

    columns: Columns

    def header(self, state: SiteState, header: Header, options: SyncOptions) -> None:
        """Check the header against the site (e.g. its custom profile fields), before
        the first line applies: ControlFileError rejects the file."""

    def prepare(self, state: SiteState, lines: Sequence[DataLine]) -> None:
        """Resolve the batch's identifiers and load the state it touches (reads only)."""

    def apply(self, state: SiteState, line: DataLine, options: SyncOptions) -> LineResult:
        """Simulate one line against `state`; the caller flushes the batch."""


class SnapshotCommand(SyncCommand, Protocol):
    """A control-file kind whose step may read its file as a snapshot (`mode`)."""

    def missing(self, state: SiteState, options: SyncOptions) -> Iterator[list[LineResult]]:
        """After the last line: the rows of the scope the file did not list, acted on
        as `options.snapshot.missing` says, a batch at a time (each result's number 0);
        of a diffed snapshot, only those its Listed part `may_act` on."""

    def snapshot_key(self, values: dict[str, str], options: SyncOptions) -> tuple[str, str] | None:
        """The row a snapshot line lists, as its text names it: (its scope unit: the
        course, group or cohort; '' for users, member) (None: it lists no row)."""

    def listed(
        self, state: SiteState, line: DataLine, options: SyncOptions
    ) -> tuple[int, Any, Course | None] | None:
        """The row a kept snapshot's line listed, resolved once `prepare` loaded its
        batch: (scope id, member or None when it names no member now, the scope's
        course) (None: its scope is gone)."""
