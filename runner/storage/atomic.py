"""Atomic writes: a crash never leaves a half-written file under its final name."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from runner.core import faults
from runner.storage.temporaries import note_directory, remove_temporaries, temporary_name


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_RENAME_NOREPLACE = 1  # linux/fs.h
_AT_FDCWD = -100
_renameat2: Any = None


def _load_renameat2() -> Any:
    """glibc's renameat2 (Linux 3.15+, glibc 2.28+), or False when there is none."""
    global _renameat2
    if _renameat2 is None:
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            _renameat2 = libc.renameat2
            _renameat2.argtypes = [
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_uint,
            ]
        except (OSError, AttributeError):
            _renameat2 = False
    return _renameat2


def rename_noreplace(src: Path, dst: Path) -> bool:
    """Rename `src` to `dst` unless `dst` exists (FileExistsError), in one atomic step.

    False when the system or the filesystem cannot (the caller falls back to link+unlink).
    """
    call = _load_renameat2()
    if not call:
        return False
    if call(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    import ctypes

    err = ctypes.get_errno()
    if err == errno.EEXIST:
        raise FileExistsError(err, os.strerror(err), str(dst))
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(dst))


class AtomicFile:
    """A temporary file beside `path`, published under `path` only by `commit()`.

    Until then nothing exists under the final name; leaving the `with` block without
    committing (an error, an interruption) removes the temporary file.
    """

    def __init__(self, path: Path, *, mode: int = 0o640) -> None:
        self.path = path
        self.mode = mode
        self.tmp = Path()
        self._pending = False  # a temporary file exists, not published
        self.file: BinaryIO
        #: bytes written so far
        self.written = 0
        #: published while still written to (`expose`)
        self.exposed = False

    def __enter__(self) -> AtomicFile:
        parent = self.path.parent
        remove_temporaries(parent)
        note_directory(parent)
        # created exclusively (never an existing file or link)
        for _ in range(100):
            tmp = os.path.join(parent, temporary_name(self.path.name))
            try:
                fd = os.open(tmp, _CREATE, 0o600)
            except FileExistsError:
                continue
            except OSError as exc:
                # the directory refused the file (a permission, a read-only or full
                # filesystem): named, not the hidden temporary users never asked for
                raise OSError(exc.errno, exc.strerror, str(parent)) from None
            break
        else:
            raise FileExistsError(errno.EEXIST, "no unused temporary name", str(parent))
        self.tmp = Path(tmp)
        self._pending = True
        # unbuffered: writes go straight to the file (write_all), no terminal check
        self.file = open(fd, "wb", buffering=0)
        return self

    def write_all(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        self.written += len(view)
        while view:
            view = view[self.file.write(view) or 0 :]

    def expose(self) -> int:
        """What is written so far on disk under the final name (replacing what is
        there), the file still open for more: the bytes a committed chunk's marker
        counts (runner.sync.chunks); `commit` later only syncs and closes it."""
        os.fsync(self.file.fileno())
        if not self.exposed:
            os.fchmod(self.file.fileno(), self.mode)
            self.commit(replace=True)
            self.exposed = True
        return self.written

    def sync(self, *, mtime_ns: int | None = None, fsync: bool = True) -> None:
        """Flush the content to disk (and set its mtime) before it is verified.

        `fsync=False` leaves the flush to the disk to the caller: one `os.sync()` for a
        whole batch of files, before any of them is published.
        """
        self.file.flush()
        faults.point("atomic.written")
        fd = self.file.fileno()
        if fsync:
            os.fsync(fd)
        os.fchmod(fd, self.mode)
        if mtime_ns is not None:
            os.utime(fd, ns=(mtime_ns, mtime_ns))
        self.file.close()
        faults.point("atomic.synced")

    def rewind(self, size: int) -> None:
        """An exposed file cut back to its first `size` bytes (what was written after a
        chunk whose transaction then failed), to be written on from there."""
        if self.file.closed:  # synced and closed for its last commit, which failed
            fd = os.open(self.path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.ftruncate(fd, size)
                os.fsync(fd)
            finally:
                os.close(fd)
        else:
            os.ftruncate(self.file.fileno(), size)
            self.file.seek(size)
        self.written = size

    def commit(self, *, replace: bool = False, sync_dir: bool = True) -> None:
        """Publish the synced file. Without `replace`, an existing file is never replaced
        (FileExistsError), even one created by someone else since the plan. An error
        names the file published, not the temporary."""
        if self.exposed:
            return  # under its name already
        try:
            self._publish(replace)
        except OSError as exc:
            if exc.filename != str(self.tmp):
                raise
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None
        self._pending = False
        if sync_dir:
            fsync_dir(self.path.parent)
        faults.point("atomic.published")

    def _publish(self, replace: bool) -> None:
        if replace:
            os.replace(self.tmp, self.path)
        elif rename_noreplace(self.tmp, self.path):
            pass
        else:
            try:
                os.link(self.tmp, self.path)
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                    raise
                # a filesystem without hard links: check, then rename (a narrow race)
                if os.path.lexists(self.path):
                    raise FileExistsError(errno.EEXIST, "File exists", str(self.path)) from None
                os.rename(self.tmp, self.path)
            else:
                os.unlink(self.tmp)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.file.closed:
            self.file.close()
        if self._pending:
            self._pending = False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o640) -> None:
    """Write `data` to a temporary file beside `path`, fsync it, rename it into place."""
    with AtomicFile(path, mode=mode) as out:
        out.write_all(data)
        out.sync()
        out.commit(replace=True)
