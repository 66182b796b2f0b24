"""Where text output goes: colours, systemd's journal priorities, a reader that went
away, and the progress line on stderr."""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import IO

from runner.core.secrets import redact

#: syslog priorities journald reads from a line's `<N>` prefix
ERR, WARNING, INFO = 3, 4, 6
_COLOURS = {"ok": "32", "changed": "33", "warning": "35", "skipped": "36", "failed": "31"}


def use_colour(stream: IO[str]) -> bool:
    """Colour on a terminal; never with a non-empty NO_COLOR (no-color.org); always with
    a non-empty FORCE_COLOR other than 0 (a CI log that shows colours), NO_COLOR first."""
    if os.environ.get("NO_COLOR", ""):
        return False
    if os.environ.get("FORCE_COLOR", "") not in ("", "0"):
        return True
    return is_terminal(stream)


def is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def to_journal(stream: IO[str]) -> bool:
    """Whether `stream` is systemd's journal stream (JOURNAL_STREAM names its device
    and inode): then each line carries its syslog priority, as `<3>`."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


class Printer:
    """Lines to a text stream: redacted, flushed, each with its syslog priority on the
    journal; a reader that went away (a closed pipe) never stops the run."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.closed = False
        self.colour = use_colour(self.out)
        self.journal = to_journal(self.out)

    def write(self, text: str, priority: int = INFO) -> None:
        """Print a line (or lines)."""
        self.put(redact(text), priority)

    def put(self, text: str, priority: int = INFO) -> None:
        """Print `text`, already redacted."""
        if self.closed:
            return
        if self.journal:
            text = "\n".join(f"<{priority}>{line}" for line in text.split("\n"))
        try:
            self.out.write(text + "\n")
            self.out.flush()
        except (BrokenPipeError, ValueError):
            self.closed = True

    def status(self, status: str) -> str:
        """A step's status as its line starts: the word, padded, coloured on a terminal."""
        word = f"{status.upper():<8}"
        colour = _COLOURS.get(status)
        return f"\033[{colour}m{word}\033[0m" if self.colour and colour else word


def status_priority(status: str, ignored: bool = False) -> int:
    """The journal priority of a step's line: a failure is an error (unless ignored), a
    step whose lines failed a warning."""
    if status == "failed" and not ignored:
        return ERR
    return WARNING if status == "warning" else INFO


class ProgressLine:
    """One self-overwriting line on stderr for a step that takes a while, only when
    stderr is a terminal (never in a log, a pipe or a JSON mode): `done/total` as a bar,
    redrawn at most ten times a second, from `delay` seconds into the step; `what`
    says where the step is ("": `done/total`, formatted only when drawn)."""

    def __init__(self, stream: IO[str] | None = None, *, delay: float = 0.5) -> None:
        self.stream = stream or sys.stderr
        self.enabled = is_terminal(self.stream) and os.environ.get("TERM") != "dumb"
        self.delay = delay
        self.started = 0.0
        self.drawn = 0.0
        self.shown = False

    def start(self) -> None:
        self.started = time.monotonic()
        self.drawn = 0.0

    def update(self, label: str, done: int, total: int, what: str) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.started < self.delay or now - self.drawn < 0.1:
            return
        self.drawn = now
        share = min(done / total, 1.0) if total > 0 else 0.0
        bar = "#" * int(share * 20)
        text = f"{label}  [{bar:<20}] {share:4.0%}  {what or f'{done:,}/{total:,}'}"
        width = max(shutil.get_terminal_size().columns - 1, 20)
        self._write("\r" + text[:width] + "\033[K")
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self._write("\r\033[K")
            self.shown = False

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False
