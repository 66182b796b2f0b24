"""A sync step's glob, as a rule any step can ask: would the sync read this path?

The sync lists its control files with `glob.glob`; the purge, the archive and the
delete steps ask the same question of one path at a time (a file dropped after the
listing, a destination that would land among the control files). Both follow glob's
rules: `*`, `?` and `[...]` within one path component, a hidden name only matched by a
pattern component starting with `.`, and retry files (`_tryback_`) only when the step
asks for them or names them.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from dataclasses import dataclass

from runner.storage.paths import STATE_DIR

RETRY_MARK = "_tryback_"
GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class ControlGlob:
    """An absolute glob pattern of a sync step, and whether it skips retry files."""

    pattern: str
    skip_retry: bool
    #: where it comes from, for messages: `sync[0] (enrols*.csv)`
    label: str = ""
    #: how many components of the pattern are the area's (a state directory is looked
    #: for below them)
    depth: int = 0

    @classmethod
    def of(cls, area: str, pattern: str, *, include_retry: bool, label: str = "") -> ControlGlob:
        full = pattern if os.path.isabs(pattern) else f"{glob.escape(area)}/{pattern}"
        literal = not GLOB_CHARS & set(pattern)
        skip = not (include_retry or literal or RETRY_MARK in pattern)
        depth = os.path.normpath(area).count(os.sep) + 1 if os.path.isabs(area) else 0
        return cls(os.path.normpath(full), skip, label, depth)

    def skips(self, name: str) -> bool:
        """A retry file the step leaves alone (its glob matched it)."""
        return self.skip_retry and RETRY_MARK in name

    def in_state(self, path: str) -> bool:
        """Whether `path` is in a postsync state directory (this area's or another's):
        never a control file, whatever a glob says."""
        return STATE_DIR in path.split(os.sep)[self.depth :]

    def matches(self, path: str) -> bool:
        """Whether `glob.glob(pattern)` would list `path` (an absolute, normalised path)."""
        if path.count(os.sep) != self.pattern.count(os.sep):
            return False  # the common case, cheaply: another depth
        if self.in_state(path):
            return False
        wanted = self.pattern.split(os.sep)
        parts = path.split(os.sep)
        for want, part in zip(wanted, parts, strict=True):
            if not GLOB_CHARS & set(want):
                if part != want:
                    return False
                continue
            if part.startswith(".") and not want.startswith("."):
                return False
            if not fnmatch.fnmatchcase(part, want):
                return False
        return not self.skips(parts[-1])
