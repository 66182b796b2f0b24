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

RETRY_MARK = "_tryback_"
GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class ControlGlob:
    """An absolute glob pattern of a sync step, and whether it skips retry files."""

    pattern: str
    skip_retry: bool
    #: where it comes from, for messages: `sync[0] (enrols*.csv)`
    label: str = ""

    @classmethod
    def of(cls, area: str, pattern: str, *, include_retry: bool, label: str = "") -> ControlGlob:
        full = pattern if os.path.isabs(pattern) else f"{glob.escape(area)}/{pattern}"
        literal = not GLOB_CHARS & set(pattern)
        skip = not (include_retry or literal or RETRY_MARK in pattern)
        return cls(os.path.normpath(full), skip, label)

    def skips(self, name: str) -> bool:
        """A retry file the step leaves alone (its glob matched it)."""
        return self.skip_retry and RETRY_MARK in name

    def matches(self, path: str) -> bool:
        """Whether `glob.glob(pattern)` would list `path` (an absolute, normalised path)."""
        if path.count(os.sep) != self.pattern.count(os.sep):
            return False  # the common case, cheaply: another depth
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
