"""One run per area at a time: an OS lock on AREA/.postsync/lock.

A run holds it exclusively. A preview (--check) writes nothing, so it never creates
the state directory or the lock file: it takes a shared lock on the lock file when one
exists (read-only descriptor), so a preview and a run never overlap while previews
may overlap each other. In an area where postsync never ran there is no lock file and
a preview takes no lock.
"""

from __future__ import annotations

import fcntl
import os
import re
import stat
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runner.core.errors import LockedError, StepError
from runner.storage.paths import STATE_DIR

MOUNTINFO = Path("/proc/self/mountinfo")


def _unescape(field: str) -> str:
    """A mountinfo field (octal escapes for spaces and the like)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def local_locks(path: Path, mountinfo: Path | None = None) -> str | None:
    """Why the lock on `path` would not stop a run on another host, when its filesystem
    keeps locks local: NFS mounted with nolock or local_lock=flock|all (without those,
    Linux's NFS client turns flock into NFS locks, which other hosts see), CIFS with
    nobrl, FUSE filesystems (sshfs...). None when locks are shared, or unknown."""
    try:
        text = (mountinfo or MOUNTINFO).read_text(encoding="utf-8", errors="replace")
        target = os.path.realpath(path)
    except OSError:
        return None
    best: tuple[int, str, str] | None = None  # (length, fstype, options)
    for line in text.splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 6 or len(tail) < 3:
            continue
        point = _unescape(fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= best[0]):
            best = (len(point), tail[0], f"{fields[5]},{tail[2]}")
    if best is None:
        return None
    _, fstype, options = best
    flags = set(options.split(","))
    if fstype in ("nfs", "nfs4") and (
        "nolock" in flags or "local_lock=flock" in flags or "local_lock=all" in flags
    ):
        which = sorted(flags & {"nolock", "local_lock=flock", "local_lock=all"})[0]
        return f"{fstype} mounted with {which}"
    if fstype in ("cifs", "smb3") and "nobrl" in flags:
        return f"{fstype} mounted with nobrl"
    if fstype.startswith("fuse"):
        return f"{fstype}, whose locks stay on this host"
    return None


def _kind(st: os.stat_result) -> str:
    return "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"


def state_dir(area: Path, *, create: bool = True) -> Path | None:
    """AREA/.postsync, created if needed (None if absent and not `create`); refused if
    it is anything but a real directory."""
    path = area / STATE_DIR
    try:
        if create:
            path.mkdir(mode=0o750, exist_ok=True)
        st = path.lstat()
    except FileNotFoundError:
        if create:
            raise
        return None
    except OSError as exc:
        raise StepError(
            f"cannot create {path}: {exc.strerror}; postsync keeps its lock and run records"
            " there (nothing was changed)"
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise StepError(f"{path} is {_kind(st)}; postsync keeps its state there")
    return path


def runs_dir(area: Path, *, create: bool = True) -> Path | None:
    """AREA/.postsync/runs, created if needed (None if absent and not `create`); refused
    (exit 3) if it is a symlink or not a directory: records are pruned there, and
    postsync never follows a link out of its state directory."""
    parent = state_dir(area, create=create)
    if parent is None:
        return None
    path = parent / "runs"
    if create:
        try:
            os.mkdir(path, 0o750)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StepError(f"cannot create {path}: {exc.strerror} (nothing was changed)") from None
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        raise StepError(
            f"{path} is {_kind(st)}; postsync never follows a link in its state directory:"
            " remove it (nothing was changed)"
        )
    return path


def _open_lock(area: Path, shared: bool) -> int | None:
    directory = state_dir(area, create=not shared)
    if directory is None:
        return None  # a preview in an area where postsync never ran
    path = directory / "lock"
    flags = os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        if shared:
            return os.open(path, os.O_RDONLY | flags)
        return os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o640)
    except FileNotFoundError:
        if shared:
            return None
        raise
    except OSError as exc:
        need = "read" if shared else "write in"
        raise StepError(
            f"cannot open the lock {path}: {exc.strerror}; postsync needs to {need}"
            " AREA/.postsync (nothing was changed)"
        ) from None


@contextmanager
def area_lock(
    area: Path, run_id: str, wait: float = 0.0, *, shared: bool = False
) -> Iterator[None]:
    """Hold the area's lock for the block; LockedError after `wait` seconds.

    `shared` (a preview): a shared lock on the lock file if it exists, nothing written.
    flock locks die with their process, so a lock left by a killed run never blocks.
    """
    fd = _open_lock(area, shared)
    if fd is None:
        yield
        return
    why = local_locks(area)
    if why is not None:
        print(
            f"postsync: warning: {area} is on {why}: its lock does not stop a run started"
            " on another host; start postsync on one host only (or mount it with NFS"
            " locking)",
            file=sys.stderr,
            flush=True,
        )
    try:
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
                holder = holder or "a preview"  # a preview writes no holder
                if remaining > 0 and not told:
                    told = True
                    print(
                        f"postsync: waiting up to {wait:g}s for the lock on {area} ({holder})",
                        file=sys.stderr,
                        flush=True,
                    )
                if remaining <= 0:
                    waited = f" after waiting {wait:g}s" if wait else ""
                    raise LockedError(
                        f"another run holds the lock on {area}{waited} ({holder});"
                        " nothing was changed (use --lock-wait SECONDS to wait)"
                    ) from None
                time.sleep(min(0.1, remaining))
        if not shared:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}, run {run_id}\n".encode(), 0)
        try:
            yield
        finally:
            if not shared:
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
