"""One run per area at a time: an OS lock on AREA/.postsync/lock."""

from __future__ import annotations

import fcntl
import os
import stat
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runner.core.errors import LockedError, StepError

STATE_DIR = ".postsync"


def state_dir(area: Path) -> Path:
    """AREA/.postsync, created if needed; refused if it is anything but a real directory."""
    path = area / STATE_DIR
    try:
        path.mkdir(mode=0o750, exist_ok=True)
        st = path.lstat()
    except OSError as exc:
        raise StepError(
            f"cannot create {path}: {exc.strerror}; postsync keeps its lock and run records"
            " there (nothing was changed)"
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise StepError(f"{path} is not a directory (a symlink?); postsync keeps its state there")
    return path


def runs_dir(area: Path) -> Path:
    """AREA/.postsync/runs, created if needed; refused (exit 3) if it is a symlink or not
    a directory: records are pruned there, and postsync never follows a link out of its
    state directory."""
    path = state_dir(area) / "runs"
    try:
        os.mkdir(path, 0o750)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StepError(f"cannot create {path}: {exc.strerror} (nothing was changed)") from None
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise StepError(
            f"{path} is {'a symlink' if stat.S_ISLNK(st.st_mode) else 'not a directory'};"
            " postsync never follows a link in its state directory: remove it (nothing"
            " was changed)"
        )
    return path


@contextmanager
def area_lock(area: Path, run_id: str, wait: float = 0.0) -> Iterator[None]:
    """Hold the area's lock for the block; LockedError after `wait` seconds.

    flock locks die with their process, so a lock left by a killed run never blocks.
    """
    path = state_dir(area) / "lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
    except OSError as exc:
        raise StepError(
            f"cannot open the lock {path}: {exc.strerror}; postsync needs to write in"
            " AREA/.postsync (nothing was changed)"
        ) from None
    try:
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
                if remaining > 0 and not told:
                    told = True
                    print(
                        f"postsync: waiting up to {wait:g}s for the lock on {area}"
                        + (f" ({holder})" if holder else ""),
                        file=sys.stderr,
                        flush=True,
                    )
                if remaining <= 0:
                    waited = f" after waiting {wait:g}s" if wait else ""
                    raise LockedError(
                        f"another run holds the lock on {area}{waited}"
                        + (f" ({holder})" if holder else "")
                        + "; nothing was changed (use --lock-wait SECONDS to wait)"
                    ) from None
                time.sleep(min(0.1, remaining))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, run {run_id}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
