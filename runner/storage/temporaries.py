"""postsync's temporary files: named after the process that makes them, removed only
by it or, once that process is provably gone, by a later run.

Two areas may write into one `roots:` directory at the same time, each under its own
lock: a run never removes a temporary whose maker may still be writing it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from runner.storage import makers

#: the directories cleaned by this process (a run): once each
_CLEANED: set[Path] = set()
_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC

#: postsync's temporary files: `.postsync-HOST-PID-START-RANDOM-NAME.tmp`. HOST, PID and
#: START name the process that made it (runner.storage.makers): a temporary is removed
#: by its maker, or by another run once that maker is provably gone. NAME is the final
#: name's safe characters (bounded: any final name, even of 255 bytes, gives a valid
#: temporary name).
TEMPORARY = re.compile(
    r"^\.postsync-(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]{1,10})-(?P<start>[0-9]{1,20})"
    r"-[0-9a-f]{8}-[A-Za-z0-9._-]{0,80}\.tmp$"
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def temporary_name(final: str) -> str:
    return f".postsync-{makers.me()}-{os.urandom(4).hex()}-{_UNSAFE.sub('_', final)[:80]}.tmp"


def dead_temporaries(directory: Path) -> list[str]:
    """The names of the temporary files in `directory` whose maker is gone.

    Only files that are provably postsync's own: its distinctive name, a regular file
    (a symlink is never followed nor counted), owned by the user postsync runs as, made
    by a process of this host that is no longer alive (runner.storage.makers). A live
    run's temporary (another area's, writing into a shared `roots:` directory), one
    made on another host, an uploader's `.enrols.csv.part` or `.x.12345678.tmp` are
    never among them.
    """
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []  # gone, not a directory, unreadable: nothing to find there
    owner = os.geteuid()
    found = []
    for entry in entries:
        match = TEMPORARY.match(entry.name)
        if match is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if not (stat.S_ISREG(st.st_mode) and st.st_uid == owner):
            continue
        if makers.gone(match["host"], int(match["pid"]), match["start"]):
            found.append(entry.name)
    return sorted(found)


def unlink_regular_at(directory: Path, name: str) -> bool:
    """Remove the regular file `name` of `directory`, the directory opened without
    following a link; False when it is gone or no longer a regular file."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return False  # a symlink in the directory's place: never followed
        raise
    try:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(st.st_mode):
            return False
        try:
            os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            return False
        return True
    finally:
        os.close(fd)


def remove_temporaries(directory: Path) -> list[Path]:
    """Remove the temporary files whose maker is gone from `directory` (dead_temporaries),
    once per directory and process (a run); the paths removed."""
    if directory in _CLEANED:
        return []
    _CLEANED.add(directory)
    return [
        directory / name
        for name in dead_temporaries(directory)
        if unlink_regular_at(directory, name)
    ]


class Journal:
    """The directories a run makes temporary files in, noted (and synced) before the
    first one is made there: if the run is killed, the next run of the area knows where
    to look for what it left (runner.engine.leftovers). Removed when the run ends (its
    temporaries are gone by then)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.noted: set[Path] = set()

    def note(self, directory: Path) -> None:
        if directory in self.noted:
            return
        line = json.dumps(str(directory)) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _FLAGS, 0o640)
        try:
            os.write(fd, line.encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        self.noted.add(directory)

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def read_journal(path: Path) -> list[Path]:
    """The directories a journal names (a line that is not one is skipped: the journal
    of a run killed while writing it)."""
    try:
        fd = os.open(path, os.O_RDONLY | _FLAGS)
    except OSError:
        return []  # gone, a symlink in its place (never followed), unreadable
    with open(fd, "rb") as handle:
        data = handle.read(1 << 20)
    found = []
    for line in data.splitlines():
        try:
            text = json.loads(line)
        except ValueError:
            continue
        if isinstance(text, str) and os.path.isabs(text):
            found.append(Path(text))
    return found


_journal: list[Journal] = []


def note_directory(directory: Path) -> None:
    """Note `directory` in the run's journal, if a run keeps one (AtomicFile, before it
    makes a temporary there)."""
    if _journal:
        _journal[-1].note(directory)


@contextlib.contextmanager
def journal(path: Path | None) -> Iterator[None]:
    """Note every directory AtomicFile makes a temporary in, in `path`, for the block
    (a run; None: a preview, which writes nothing)."""
    if path is None:
        yield
        return
    _journal.append(Journal(path))
    try:
        yield
    finally:
        _journal.pop().close()
