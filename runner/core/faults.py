"""Fault-injection points, for the reliability tests only.

`point(name)` marks a place where a crash or an error must leave nothing lost. It does
nothing unless the environment variable POSTSYNC_FAULTS is set (read once, at import),
to a comma-separated list of:

  trace=FILE          append "N NAME" to FILE for every point reached (N counts from 1)
  kill=N              SIGKILL this process at the Nth point reached
  kill=NAME           SIGKILL at the first point named NAME
  enospc=NAME         raise "No space left on device" at every point named NAME
  enospc=N            raise it at the Nth point reached
  sleep=NAME:SECONDS  sleep at the first point named NAME (to act on a run mid-way)
  wait=NAME:FILE      at the first point named NAME, wait until FILE exists (at most
                      two minutes): a test acts on the run there, then lets it go on
  bug=NAME            raise RuntimeError at the first point named NAME (an internal error)
  term=NAME           SIGTERM this process at the first point named NAME (a handler runs
                      at once unless the point is in a block that holds signals)

Point names: sync.loaded (a batch's state read, nothing of it written), sync.batch,
sync.commit, sync.committed, step.done, atomic.written, atomic.synced,
atomic.published, delete.before, delete.after, groups.delete (clean_empty_groups
planned, nothing deleted yet), groups.commit, groups.committed, record.saved,
journal.publish (a control file's lines of the change journal being published),
sync.chunk, sync.chunk.committed and sync.chunked (before a chunk's commit, just after
it, and once it is noted: commit_every), undo.written (each of an undo's files in place).
"""

from __future__ import annotations

import errno
import os
import signal
import time

_SPEC = os.environ.get("POSTSYNC_FAULTS", "")


class _Faults:
    def __init__(self, spec: str) -> None:
        self.count = 0
        self.trace: str | None = None
        self.kill_at: int | None = None
        self.kill_name: str | None = None
        self.enospc: set[str] = set()
        self.enospc_at: int | None = None
        self.sleep: dict[str, float] = {}
        self.wait: dict[str, str] = {}
        self.bug: str | None = None
        self.term: str | None = None
        for item in filter(None, (p.strip() for p in spec.split(","))):
            key, _, value = item.partition("=")
            if key == "trace":
                self.trace = value
            elif key == "kill" and value.isdigit():
                self.kill_at = int(value)
            elif key == "kill":
                self.kill_name = value
            elif key == "enospc" and value.isdigit():
                self.enospc_at = int(value)
            elif key == "enospc":
                self.enospc.add(value)
            elif key == "bug":
                self.bug = value
            elif key == "term":
                self.term = value
            elif key == "sleep":
                name, _, seconds = value.partition(":")
                self.sleep[name] = float(seconds or 1)
            elif key == "wait":
                name, _, path = value.partition(":")
                self.wait[name] = path

    def reach(self, name: str) -> None:
        self.count += 1
        if self.trace:
            with open(self.trace, "a", encoding="utf-8") as out:
                out.write(f"{self.count} {name}\n")
        if self.kill_at == self.count or self.kill_name == name:
            os.kill(os.getpid(), signal.SIGKILL)
        if name in self.sleep:
            time.sleep(self.sleep.pop(name))
        if name in self.wait:
            path, deadline = self.wait.pop(name), time.monotonic() + 120
            while not os.path.exists(path) and time.monotonic() < deadline:
                time.sleep(0.02)
        if name == self.term:
            self.term = None
            os.kill(os.getpid(), signal.SIGTERM)
        if name == self.bug:
            self.bug = None
            raise RuntimeError(f"injected bug at {name}")
        if name in self.enospc or self.enospc_at == self.count:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


_FAULTS = _Faults(_SPEC) if _SPEC else None


def point(name: str) -> None:
    """A named place where the tests may inject a crash or an error."""
    if _FAULTS is not None:
        _FAULTS.reach(name)
