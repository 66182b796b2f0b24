"""What a sync step finds: the files its glob lists, whether each is ready (not still
being written), and whether the feed came (min_files) and is fresh (max_age_hours)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING

from runner.core.errors import StepError
from runner.core.text import plural
from runner.step.globs import ControlGlob

if TYPE_CHECKING:
    from runner.step.facts import RunFacts
    from runner.step.scope import StepScope
    from runner.sync.config import SyncConfig

#: how far ahead of the clock a control file's modification time may be before
#: max_age_hours warns (a file server's clock a little ahead is common)
SKEW = 60.0


def listed(
    scope: StepScope, rule: ControlGlob, lock: Path | None
) -> list[tuple[Path, os.stat_result]]:
    """The regular files the step reads, in the order it applies them (retry files,
    then the feed's own), with their status."""
    found = []
    for match in rule.listed():
        try:
            st = os.lstat(match)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue  # directories, and symlinks: a control file is a real file
        path = scope.confine(match, "file")
        if path != lock:  # the uploader's lock file is no control file
            found.append((path, st))
    return found


def not_ready(st: os.stat_result, now: float, settle: float) -> str | None:
    """Why a listed file is not ready (None: it is): modified less than `settle`
    seconds ago, so perhaps still being uploaded. A modification time in the future
    (the uploader's clock, or its `touch -d`) cannot tell: the change time, which this
    machine's kernel (or the file server) sets at every write, is judged instead."""
    age = now - st.st_mtime
    if age < 0:
        if now - st.st_ctime < settle:
            return (
                "its modification time is in the future (a clock out of step?) and it"
                f" changed less than settle_seconds {settle:g} ago: left for the next run"
            )
        return None
    if age < settle:
        return (
            f"modified less than settle_seconds {settle:g} ago: still being written?"
            " left for the next run"
        )
    return None


def lock_present(lock: Path | None) -> bool:
    return lock is not None and os.path.lexists(lock)


def lock_reason(config: SyncConfig, run: RunFacts) -> str:
    assert config.uploader_lock is not None
    return (
        f"{run.display(config.uploader_lock)} is in the area (uploader_lock): the"
        " uploader is still writing; left for the next run"
    )


def check_feed(config: SyncConfig, now: float, clock: float | None = None) -> str | None:
    """StepError when the feed did not come (min_files) or is stale (max_age_hours:
    judged by the files not dated in the future); a warning when a file is dated in
    the future, whose age max_age_hours cannot tell (`clock`: the time now, when the
    files were listed). Both count the feed's own files only: a retry file dropped in
    the area is no feed."""
    found = config.feed_files
    if found < config.min_files:
        waiting = (
            f"; {plural(len(config.waiting), 'more file')} not ready yet (still being written)"
            if config.waiting
            else ""
        )
        retries = len(config.files) - found
        retry_files = f" ({plural(retries, 'retry file')} not counted)" if retries else ""
        raise StepError(
            f"{plural(found, 'ready control file')} {'matches' if found == 1 else 'match'}"
            f" {config.pattern}{retry_files}, fewer than min_files {config.min_files}"
            f"{waiting}: did the feed run? (nothing of this step applied)"
        )
    if config.max_age_hours is None or not config.mtimes:
        return None
    # a file dated in the future tells no age: left out, or one of them beside a stale
    # feed would make it look fresh (every file so dated: nothing to judge, a warning)
    clock = time.time() if clock is None else clock
    dated = [m for m in config.mtimes if m - clock <= SKEW]
    if dated:
        age = (now - max(dated)) / 3600
        if age > config.max_age_hours:
            some = " not dated in the future" if len(dated) < len(config.mtimes) else ""
            raise StepError(
                f"the newest file matching {config.pattern}{some} is {age:.1f} hours old, older"
                f" than max_age_hours {config.max_age_hours:g}: a stale feed? (nothing of"
                " this step applied)"
            )
    ahead = max(config.mtimes) - clock
    if ahead > SKEW:
        return (
            f"modified {ahead / 3600:.1f} hours in the future: clock skew between the"
            " machine that wrote it and this one? max_age_hours cannot tell its age"
        )
    return None
