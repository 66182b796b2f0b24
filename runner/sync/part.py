"""What the users, cohorts and groups states share (runner.sync.base.Part): the site's
connection and clock, a batch written at its end (or kept by a preview), and updates
of rows by id, one statement per set of changed columns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table

from runner.db.raw import Raw

if TYPE_CHECKING:
    from runner.sync.state import SiteState


def update_rows(raw: Raw, table: Table, changes: Mapping[int, Mapping[str, Any]], now: int) -> None:
    """UPDATE each row (by id) with its changed columns and timemodified `now`."""
    by_columns: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for row_id, changed in sorted(changes.items()):
        if changed:
            columns = tuple(sorted(changed))
            by_columns.setdefault(columns, []).append((*(changed[c] for c in columns), now, row_id))
    for columns, values in by_columns.items():
        raw.run(raw.updates(table, (*columns, "timemodified"), values))


class BatchPart:
    """A command's state beside the enrolments': `reset` starts a batch, `_write`
    writes it, `_withhold` keeps it in a preview's Withheld instead."""

    def __init__(self, site: SiteState) -> None:
        self.site = site
        self.raw = site.raw
        self.t = site.t
        self.now = site.now
        self.withheld = site.withheld

    def reset(self) -> None:
        raise NotImplementedError

    def _write(self) -> None:
        raise NotImplementedError

    def _withhold(self) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        if self.withheld is not None:
            self._withhold()
        else:
            self._write()
        self.reset()

    def finish(self) -> None:
        pass  # every batch is written by its flush
