"""Path confinement and filesystem operations that never follow symlinks."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runner.core import faults
from runner.core.text import printable


def resolve_under(raw: str, base: Path, dirs: dict[str, str] | None = None) -> Path:
    """`raw` made absolute against `base`, every symlink of its existing part resolved.

    `dirs` keeps resolved directories for the paths of one step (thousands of files
    under the same directory): only the last part is then looked at again.
    """
    text = os.path.expanduser(raw) if raw.startswith("~") else raw
    text = os.path.join(base, text)  # an absolute `text` stays as it is
    head, name = os.path.split(text)
    if dirs is None or name in ("", ".", ".."):
        return Path(text).resolve(strict=False)
    parent = dirs.get(head)
    if parent is None:
        parent = dirs[head] = str(Path(head).resolve(strict=False))
    resolved = os.path.join(parent, name)
    return Path(resolved).resolve(strict=False) if os.path.islink(resolved) else Path(resolved)


def is_within(path: Path, parents: Sequence[Path]) -> bool:
    """`path` is one of `parents` or under one (absolute, resolved paths)."""
    text = str(path)
    for parent in parents:
        top = str(parent)
        if text == top or text.startswith(top if top.endswith("/") else top + "/"):
            return True
    return False


#: where postsync keeps an area's state (lock, records, run directories): AREA/.postsync
STATE_DIR = ".postsync"


def state_part(path: str, top: str) -> str | None:
    """The state directory `path` is in or is (an area's `.postsync`: this area's, or
    another's nested in it or in a root), or None; `top` is the area or root it is
    under (absolute, normalised)."""
    rest = path[len(top) :].split(os.sep)
    if STATE_DIR not in rest:
        return None
    return top.rstrip(os.sep) + os.sep.join(rest[: rest.index(STATE_DIR) + 1])


def confinement_error(raw: str, resolved: Path, area: Path, roots: Sequence[Path]) -> str | None:
    """Why `resolved` (from `raw`) may not be written or deleted, or None when it may."""
    tops = [top for top in (area, *roots) if is_within(resolved, (top,))]
    if tops:
        text = str(resolved)
        for top in tops:
            state = state_part(text, str(top))
            if state is None:
                continue
            if state == os.path.join(area, STATE_DIR):
                return f"{resolved} is postsync's own state directory; no step may touch it"
            return (
                f"{resolved} is in {state}, another area's postsync state directory (its"
                " lock and records); no step may touch it"
            )
        return None
    where = f"the area ({area})" + (
        f" or the roots ({', '.join(str(r) for r in roots)})" if roots else ""
    )
    shown = f"{raw} resolves to {resolved}, which is" if raw != str(resolved) else f"{raw} is"
    return (
        f"{shown} outside {where}; use a path inside the area or list its directory under `roots:`"
    )


def holds_state(directory: str) -> bool:
    """`directory` is an area: it holds a `.postsync/` directory (its lock, its records)."""
    return os.path.isdir(os.path.join(directory, STATE_DIR))


def other_area(path: Path, area: Path, roots: Sequence[Path]) -> Path | None:
    """The other area `path` is or is in, or None: the nearest directory holding a
    `.postsync/`, from `path` up to the area or root it is under (this area excluded)."""
    tops = [top for top in (area, *roots) if is_within(path, (top,))]
    current = path
    while current != area and is_within(current, tops):
        if holds_state(str(current)):
            return current
        if current.parent == current:
            break
        current = current.parent
    return None


def display(path: Path, area: Path) -> str:
    """A path as users see it: relative to the area when inside it."""
    text, top = str(path), str(area)
    if text == top:
        return "."
    prefix = top if top.endswith("/") else top + "/"
    return printable(text[len(prefix) :] if text.startswith(prefix) else text)


class DirFds:
    """Open directory descriptors for a tree, walked without following any symlink.

    Unlinking through a descriptor obtained with O_NOFOLLOW at every level means a
    directory swapped for a symlink after planning can never lead outside the tree.
    """

    FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

    def __init__(self, top: Path) -> None:
        self.top = top
        self._fds: dict[tuple[str, ...], int] = {}

    def open(self, parts: tuple[str, ...]) -> int:
        fd = self._fds.get(parts)
        if fd is not None:
            return fd
        if not parts:
            fd = os.open(self.top, self.FLAGS)
        else:
            fd = os.open(parts[-1], self.FLAGS, dir_fd=self.open(parts[:-1]))
        self._fds[parts] = fd
        return fd

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __enter__(self) -> DirFds:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Identity = tuple[int, int, int]


@dataclass(frozen=True)
class FileState:
    """What tells a control file from another one, and from itself changed: device,
    inode, size, mtime and ctime (which no uploader can set back)."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileState:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def change(self, now: FileState) -> str | None:
        """How the file `now` differs from this state (None: it does not)."""
        if (now.dev, now.ino) != (self.dev, self.ino):
            return "was replaced by another file"
        if now.size != self.size:
            return f"went from {self.size:,} to {now.size:,} bytes"
        if now.mtime_ns != self.mtime_ns:
            return "was modified (its mtime changed)"
        if now.ctime_ns != self.ctime_ns:
            return "was modified (its ctime changed)"
        return None


def identity(st: os.stat_result) -> Identity:
    """What tells a file from its replacement: device, inode and mtime."""
    return (st.st_dev, st.st_ino, st.st_mtime_ns)


#: read a file without following a symlink in its place (ELOOP) or waiting on a FIFO
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class NotRegular(OSError):
    """A path postsync reads is not a regular file: `what` it is instead."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(f"{path} is {what}, not a regular file")
        self.filename = str(path)
        self.what = what


def kind(mode: int) -> str:
    """What a file that is not a regular one is, for a message."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    return "not a regular file"


def open_regular(path: Path) -> tuple[int, os.stat_result]:
    """A descriptor of the regular file at `path` (blocking, close-on-exec) and its
    status: never through a symlink put in its place (OSError, errno ELOOP), never
    waiting on a FIFO or reading a directory or a device (NotRegular)."""
    fd = os.open(path, READ_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(path, kind(st.st_mode))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def unlink_regular(
    fds: DirFds, rel: tuple[str, ...], expect: Identity | None, state: FileState | None = None
) -> bool:
    """Delete the regular file `rel` under the tree; False when it is already gone.

    `expect` is the file's identity when planning: a file replaced or modified meanwhile
    is not deleted (OSError). With `state` (a control file as the sync read it), its
    size and ctime must be unchanged too. Neither the file nor any directory on the way
    may be a symlink.
    """
    try:
        dir_fd = fds.open(rel[:-1])
        st = os.stat(rel[-1], dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        raise OSError(f"{'/'.join(rel)} is no longer a regular file; left in place")
    if (expect is not None and identity(st) != expect) or (
        state is not None and state.change(FileState.of(st)) is not None
    ):
        raise OSError(
            f"{'/'.join(rel)} was replaced or modified since it was planned; left in place"
        )
    faults.point("delete.before")
    try:
        os.unlink(rel[-1], dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    faults.point("delete.after")
    return True


#: the longest file name Linux filesystems allow, in bytes
NAME_MAX = 255


def fit_name(path: Path) -> Path:
    """`path`, its file name shortened when it is longer than the filesystem allows:
    the middle of its stem gives way to `~` and 8 hex digits of the whole name's sha256;
    its beginning, its last 40 bytes (`_tryback_STAMP`) and its extension stay. The
    same name always gives the same short name (a second run finds it)."""
    name = os.fsencode(path.name)
    if len(name) <= NAME_MAX:
        return path
    stem, dot, ext = name.rpartition(b".")
    if not dot or len(ext) > 16 or not stem:
        stem, ext = name, b""
    suffix = b"." + ext if ext else b""
    digest = b"~" + hashlib.sha256(name).hexdigest()[:8].encode() + b"~"
    head, tail = NAME_MAX - len(suffix) - len(digest) - 40, len(stem) - 40
    # never inside a UTF-8 character
    while head and stem[head] & 0xC0 == 0x80:
        head -= 1
    while tail < len(stem) and stem[tail] & 0xC0 == 0x80:
        tail += 1
    return path.with_name(os.fsdecode(stem[:head] + digest + stem[tail:] + suffix))
