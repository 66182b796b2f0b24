"""A sync step's configuration: its options rendered and checked, its control files
listed (runner.sync.step.configure makes it; reads only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runner.step.globs import ControlGlob
from runner.storage.paths import FileState
from runner.sync.base import SyncOptions
from runner.sync.reader import MAX_LINE_BYTES


@dataclass(frozen=True)
class SyncConfig:
    command: str
    pattern: str
    #: the rule of the pattern: which paths this step reads (runner.step.globs)
    glob: ControlGlob
    #: the matching files ready to be read, in the order they are applied (retry
    #: files first, then the feed's own files, each in name order)
    files: tuple[Path, ...]
    #: each ready file as it was listed: the file the sync must read, unchanged
    states: tuple[FileState, ...]
    encoding: str
    separator: str
    #: what the step's command is given for each file
    options: SyncOptions
    min_files: int = 0
    max_age_hours: float | None = None
    #: the modification times of the feed's own listed files (ready or not; retry
    #: files left out); `newest_file`: the newest of them
    mtimes: tuple[float, ...] = ()
    #: the matching files not ready (still being written), and why: left as they are
    waiting: tuple[tuple[Path, str], ...] = ()
    #: the uploader's lock file (tool_sync's alock.txt): present, no file is ready
    uploader_lock: Path | None = None
    max_line_bytes: int = MAX_LINE_BYTES
    newest_file: Path | None = None
    #: the step as a marker of an applied file names it: its command and its file
    #: pattern as the playbook writes it (before rendering)
    key: str = ""

    @property
    def feed_files(self) -> int:
        """The ready files that are the feed's own (what `min_files` counts)."""
        return sum(1 for path in self.files if not self.glob.is_retry(str(path)))
