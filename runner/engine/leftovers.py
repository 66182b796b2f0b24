"""What a killed run of the area left, found and removed by the next run.

A run killed (SIGKILL, a power cut) leaves its temporary files wherever it was writing
(the area, reports/, archives/, `roots:` directories) and, when it died before its
first record was saved, a run directory of reports that no record points to. Each run
notes the directories it makes temporaries in (a journal, runner.storage.temporaries);
the next run, holding the area's lock (so no other run of the area is alive), looks
there, in the area and in the state directory, and removes:

- temporaries whose maker is provably gone (its process, on this host, is no longer
  alive), never a live process's (another area writing into a shared directory) nor
  another host's;
- run directories without a record (`RUN_ID/` without `RUN_ID.json`): `postsync post`
  reads reports only through a record, and a record only names its own run's
  directory, so nothing can need them. The current run's own directory is never one.

A preview finds the same and removes nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from runner.record.check import RUN_ID
from runner.step.facts import RunFacts
from runner.storage.paths import is_within, state_part
from runner.storage.temporaries import dead_temporaries, read_journal, unlink_regular_at

#: a run's journal, beside its record: the directories it makes temporaries in
JOURNAL_SUFFIX = ".dirs"
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Leftover:
    path: Path
    #: a temporary file (in `path`'s directory), or a run directory (under runs/)
    run_dir: bool

    @property
    def detail(self) -> str:
        if self.run_dir:
            return "a killed run's reports, no record points to them"
        return "a killed run's temporary file"


@dataclass
class Leftovers:
    found: list[Leftover]
    #: the dead runs' journals (postsync's bookkeeping, removed silently)
    journals: list[str]


def journal_path(run: RunFacts) -> Path:
    return run.runs_dir / f"{run.run_id}{JOURNAL_SUFFIX}"


def find(run: RunFacts) -> Leftovers:
    """What killed runs of the area left (reads only). Called with the area's lock held."""
    runs = run.runs_dir
    try:
        fd = os.open(runs, _DIR)
    except (FileNotFoundError, NotADirectoryError):
        return Leftovers([], [])
    try:
        entries = [(e.name, e.stat(follow_symlinks=False)) for e in os.scandir(fd)]
    finally:
        os.close(fd)
    names = {name for name, _ in entries}
    directories = [run.area, runs]
    journals: list[str] = []
    found: list[Leftover] = []
    for name, st in sorted(entries):
        if name.endswith(JOURNAL_SUFFIX) and stat.S_ISREG(st.st_mode):
            journals.append(name)
            directories += read_journal(runs / name)
        elif (
            stat.S_ISDIR(st.st_mode)
            and RUN_ID.match(name)
            and name != run.run_id
            and f"{name}.json" not in names
        ):
            found.append(Leftover(runs / name, True))
    orphans = [leftover.path for leftover in found]
    seen: set[Path] = set()
    for directory in directories:
        if directory in seen or not _may_clean(directory, run, orphans):
            continue
        seen.add(directory)
        found += [Leftover(directory / n, False) for n in dead_temporaries(directory)]
    return Leftovers(found, journals)


def _may_clean(directory: Path, run: RunFacts, orphans: list[Path]) -> bool:
    """A directory the run may write in (a journal is in the area, which anyone with
    write access to it may edit), reached without a symlink, not going anyway."""
    if not is_within(directory, (run.area, *run.roots)) or is_within(directory, orphans):
        return False
    own = str(run.state_dir)
    for top in (run.area, *run.roots):
        state = state_part(str(directory), str(top)) if is_within(directory, (top,)) else None
        if state is not None and state != own:
            return False  # another area's state: never touched
    return os.path.realpath(directory) == str(directory)


def remove(leftovers: Leftovers, run: RunFacts) -> list[Leftover]:
    """Remove what `find` found; the leftovers removed. Best effort: what cannot be
    removed (gone meanwhile, replaced by a symlink, not permitted) stays, and the run
    goes on."""
    runs = run.runs_dir
    removed: list[Leftover] = []
    for leftover in leftovers.found:
        if not leftover.run_dir:
            with contextlib.suppress(OSError):
                if unlink_regular_at(leftover.path.parent, leftover.path.name):
                    removed.append(leftover)
    fd = os.open(runs, _DIR)
    try:
        for leftover in leftovers.found:
            if leftover.run_dir:
                # through the runs directory's descriptor; a symlink put in its place,
                # or found inside it, is never followed (OSError: left alone)
                with contextlib.suppress(OSError):
                    shutil.rmtree(leftover.path.name, dir_fd=fd)
                    removed.append(leftover)
        for name in leftovers.journals:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)
    return removed
