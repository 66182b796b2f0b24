"""What a killed run of the area left applied: its markers (runner.db.applied), read once
when the run's first sync step starts, and what this run does with them.

A marker is *pending* when its run did not end with every step run (no record, a
record not finished, an interrupted run, one a failed step stopped): its file's exact
bytes are applied, its post-treatments may not have run. The sync takes such a file's
outcome from the marker instead of applying it
again. A marker of a run that ended with every step run is *stale*: removed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from runner.step.globs import ControlGlob

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from runner.db.applied import Marker


def _run_ended(runs_dir: Path, run_id: str) -> bool:
    """Whether the run's record says it ended with every step run (`complete`)."""
    if not run_id.replace("-", "").isalnum():
        return False
    try:
        data = json.loads((runs_dir / f"{run_id}.json").read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and bool(data.get("finished")) and bool(data.get("complete"))


@dataclass
class Recovery:
    """The markers of dead runs of this area, by control file."""

    loaded: bool = False
    #: by (the sync step that applied it, the file): steps whose globs overlap each
    #: applied the file once
    pending: dict[tuple[str, Path], Marker] = field(default_factory=dict)
    #: markers to remove when this run ends (stale ones; files changed since)
    dropped: list[int] = field(default_factory=list)
    #: the globs of the sync steps that ran
    globs: list[ControlGlob] = field(default_factory=list)
    #: markers of files this run left committed in part (commit_every): kept when it
    #: ends, for the next run to resume them
    unfinished: set[int] = field(default_factory=set)

    def load(self, conn: Connection, area: Path, runs_dir: Path, run_id: str) -> None:
        from runner.db import applied

        if self.loaded:
            return
        self.loaded = True
        ended: dict[str, bool] = {}
        for marker in applied.markers(conn, area):
            if marker.run_id == run_id:
                continue  # `postsync post` of that run: its own markers
            if marker.run_id not in ended:
                ended[marker.run_id] = _run_ended(runs_dir, marker.run_id)
            if ended[marker.run_id] and "resume" not in marker.outcome:
                self.dropped.append(marker.id)  # a file committed in part stays pending
                continue
            key = (str(marker.outcome.get("step", "")), marker.path)
            older = self.pending.get(key)
            if older is not None:  # the later run applied the file's newer bytes
                self.dropped.append(older.id)
            self.pending[key] = marker

    def take(self, path: Path, step: str) -> Marker | None:
        """The pending marker of `path` that `step` left, no longer pending."""
        return self.pending.pop((step, path), None)

    def considered(self, rule: ControlGlob) -> None:
        """A sync step of this run listed the files `rule` matches."""
        self.globs.append(rule)

    def declared_groups(self) -> dict[int, str]:
        """Groups that a groups file a killed run applied names (group id -> the file's
        name), for the files this run does not post-treat (gone since)."""
        out: dict[int, str] = {}
        for marker in self.pending.values():
            if marker.outcome.get("command") == "groups" and not marker.outcome.get("error"):
                for gid in marker.outcome.get("declared_groups", ()):
                    out.setdefault(int(gid), marker.path.name)
        return out

    def done(self) -> list[int]:
        """The markers this run ends: stale, superseded, and those of files a sync step
        of the run looked for and did not find (post-treated by their run). A file still
        there that this run did not take (not ready: left for the next run) keeps its."""
        gone = [
            m.id
            for (_step, path), m in self.pending.items()
            if any(rule.matches(os.path.normpath(path)) for rule in self.globs)
            and not os.path.lexists(path)
        ]
        return self.dropped + gone
