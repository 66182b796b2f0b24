"""A sync step's glob, as a rule any step can ask: would the sync read this path?

The sync lists its control files with `glob.glob`; the purge, the archive and the
delete steps ask the same question of one path at a time (a file dropped after the
listing, a destination that would land among the control files). Both follow glob's
rules: `*`, `?` and `[...]` within one path component, a hidden name only matched by a
pattern component starting with `.`.

Retry files (`_tryback_` in the name) are not the feed's own files: a step reads one
only when its pattern names retry files (`enrols_tryback_*.csv`, or the file's very
name), or, with `include_retry_files: true`, when it is the retry file of one of the
step's own files (its name with the `_tryback_` part taken out is one the pattern
matches: `enrols_tryback_20261204-0230.csv` for `enrols*.csv` or `enrols.csv`).
"""

from __future__ import annotations

import fnmatch
import glob
import os
from dataclasses import dataclass

from runner.storage.paths import STATE_DIR

RETRY_MARK = "_tryback_"
GLOB_CHARS = frozenset("*?[")


def feed_name(name: str) -> str | None:
    """The name of the file a retry file was written for, or None for a name that is no
    retry file's: `enrols.csv` for `enrols_tryback_20261204-0230.csv`, for the `.1`
    that `on_conflict: suffix` adds (`enrols_tryback_20261204-0230.1.csv`) and for an
    older retry of a retry (`enrols_tryback_A_tryback_B.csv`): the name up to the first
    `_tryback_`, with the extension of the whole name."""
    head, mark, tail = name.partition(RETRY_MARK)
    if not mark or not head:
        return None
    dot = tail.rfind(".")
    return head + (tail[dot:] if 0 <= dot < len(tail) - 1 else "")


@dataclass(frozen=True)
class ControlGlob:
    """An absolute glob pattern of a sync step, and which retry files it reads."""

    pattern: str
    #: the pattern names retry files itself (`_tryback_` in it): every name it matches
    #: is one of the step's own files
    names_retry: bool
    #: where it comes from, for messages: `sync[0] (enrols*.csv)`
    label: str = ""
    #: how many components of the pattern are the area's (a state directory is looked
    #: for below them)
    depth: int = 0
    #: `include_retry_files`: the retry files of the step's own files are read too
    retry_files: bool = False

    @classmethod
    def of(cls, area: str, pattern: str, *, include_retry: bool, label: str = "") -> ControlGlob:
        full = pattern if os.path.isabs(pattern) else f"{glob.escape(area)}/{pattern}"
        depth = os.path.normpath(area).count(os.sep) + 1 if os.path.isabs(area) else 0
        return cls(os.path.normpath(full), RETRY_MARK in pattern, label, depth, include_retry)

    def is_retry(self, path: str) -> bool:
        """Whether `path` (one the step reads) is a retry file of the step's own files,
        not one of them: `min_files` and `max_age_hours` do not count it."""
        return not self.names_retry and RETRY_MARK in os.path.basename(path)

    def in_state(self, path: str) -> bool:
        """Whether `path` is in a postsync state directory (this area's or another's):
        never a control file, whatever a glob says."""
        return STATE_DIR in path.split(os.sep)[self.depth :]

    def listed(self) -> list[str]:
        """The paths the step reads (normalised; any kind of file, checked after), the
        retry files first (they hold the lines of an earlier feed), each in name order."""
        found = set(glob.glob(self.pattern))
        if self.retry_files and not self.names_retry:
            folder = os.path.dirname(self.pattern)
            found.update(glob.glob(os.path.join(folder, f"*{RETRY_MARK}*"), include_hidden=True))
        paths = [p for p in {os.path.normpath(p) for p in found} if self.matches(p)]
        return sorted(paths, key=lambda p: (not self.is_retry(p), p))

    def retry_files_left(self) -> int:
        """How many retry files the pattern lists that the step does not read (it sets
        no include_retry_files): to say why a step that sees one found nothing."""
        if self.retry_files or self.names_retry:
            return 0
        return sum(
            1
            for p in glob.glob(self.pattern)
            if RETRY_MARK in os.path.basename(p) and not self.in_state(os.path.normpath(p))
        )

    def matches(self, path: str) -> bool:
        """Whether the step reads `path` (an absolute, normalised path): `glob.glob` of
        the pattern lists it and it is not a retry file, or it is one the step reads."""
        if path.count(os.sep) != self.pattern.count(os.sep):
            return False  # the common case, cheaply: another depth
        if self.in_state(path):
            return False
        name = path.rsplit(os.sep, 1)[-1]
        if self.names_retry or RETRY_MARK not in name:
            return self._fits(path)
        feed = feed_name(name) if self.retry_files else None
        return feed is not None and self._fits(path[: len(path) - len(name)] + feed)

    def _fits(self, path: str) -> bool:
        """Whether `glob.glob(pattern)` would list `path`, retry or not."""
        wanted = self.pattern.split(os.sep)
        for want, part in zip(wanted, path.split(os.sep), strict=True):
            if not GLOB_CHARS & set(want):
                if part != want:
                    return False
                continue
            if part.startswith(".") and not want.startswith("."):
                return False
            if not fnmatch.fnmatchcase(part, want):
                return False
        return True
