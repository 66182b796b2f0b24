"""Running the site's own script for purge_moodle_caches: nothing of postsync's
readable by it, bounded in time, its output kept in a bounded window with the run's
secrets masked, and stopped with every process it started (its process group, and
what it detached: postsync adopts those as a child subreaper)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from runner.core.errors import StepError
from runner.core.interpreter import uninterrupted
from runner.core.secrets import longest, redact

#: the output kept while the script runs (its end: what a failure quotes), in bytes;
#: more than QUOTED characters can take, so that the quote never starts at its start
KEPT = 64 * 1024
#: how long a stopped script's process group has to end on SIGTERM before SIGKILL
GRACE = 5.0
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


def _prctl() -> Any:
    """libc's prctl, or None where there is none (not Linux)."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def hide_this_process() -> None:
    """Make postsync's process non-dumpable (prctl PR_SET_DUMPABLE 0), for good.

    The script is the site's code (its config.php) and may run as postsync's own user:
    a process of the same user reads another's /proc/PID/environ (the database
    password postsync was given), its open descriptors and memory, unless that process
    is non-dumpable. It stays so for the rest of the run: a child the script left
    behind is no more trusted once the script is done. (Not on Linux: nothing to do.)
    """
    prctl = _prctl()
    if prctl is None:  # not Linux, no /proc/PID/environ
        return
    if prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise StepError(
            "cannot hide postsync's process from the script (prctl PR_SET_DUMPABLE:"
            f" {os.strerror(code)}): not run"
        )


def run_script(
    command: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    switch: Mapping[str, Any],
) -> tuple[int | None, str]:
    """Run `command` in a session of its own: (its exit status, or None when it
    outlasted `timeout`; the end of its output, its secrets masked).

    It inherits no descriptor but its standard ones (stdin: /dev/null). Once it is done,
    or stopped (its timeout, or postsync interrupted: the interruption goes on once the
    script is gone), its whole process group goes too: SIGTERM then, after GRACE seconds,
    SIGKILL; the script's own process is reaped last, so that its group's id is never
    another's while it is signalled. Then every process it detached (a session of its
    own: `setsid -f`, a daemon's double fork) goes the same way: see `_adopting`.
    """
    deadline = time.monotonic() + timeout
    margin = longest()
    said = bytearray()
    with (
        _adopting(),
        subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            close_fds=True,
            start_new_session=True,
            **switch,
        ) as process,
    ):
        assert process.stdout is not None
        done = False
        try:
            done = _read_all(process.stdout.fileno(), said, deadline, KEPT + margin)
            done = done and _ended(process.pid, deadline)
        finally:
            # stopped as one that outlasts its timeout when postsync is interrupted
            # (Ctrl-C, SIGTERM) too, a second signal held meanwhile: its group never
            # outlives postsync, which never waits for it to end on its own
            with uninterrupted():
                if not done:
                    _signal_group(process.pid, signal.SIGTERM)
                    _ended(process.pid, time.monotonic() + GRACE)
                _signal_group(process.pid, signal.SIGKILL)  # what is left of it
                status = process.wait()
    text = redact(said.decode("utf-8", "replace"))  # masked whole, before any cut
    if len(said) > KEPT:
        # where a secret cut by the kept window's start would have left its end
        text = text[margin:]
    return (status if done else None), text


def _read_all(fd: int, said: bytearray, deadline: float, keep: int) -> bool:
    """Read `fd` to its end (True) or until `deadline` (False), keeping its last `keep`
    bytes in `said`."""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                continue
            data = os.read(fd, 65536)
            if not data:
                return True
            said += data
            del said[:-keep]
    return False


def _ended(pid: int, deadline: float) -> bool:
    """Whether process `pid` ended by `deadline`; left unreaped (a zombie keeps its
    process group's id)."""
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # nothing left of it
        os.killpg(pgid, signum)


@contextlib.contextmanager
def _adopting() -> Iterator[None]:
    """postsync a child subreaper (prctl PR_SET_CHILD_SUBREAPER) while the script runs,
    and every process that became its child meanwhile stopped and reaped at the end.

    A process the script detaches (a session and group of its own, its parent gone)
    escapes its group's signal; as postsync's orphan, not init's, it is found again: a
    child of postsync's that it did not have before (postsync starts no other process;
    those it had are left alone). The setting it had is restored once they are gone.
    (Not on Linux: no subreaper; the script's group is stopped all the same.)
    """
    prctl = _prctl()
    if prctl is None:
        yield
        return
    was = ctypes.c_int(0)
    if prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(was), 0, 0, 0) != 0 or (
        prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0
    ):
        code = ctypes.get_errno()
        raise StepError(
            "cannot adopt what the script would leave behind (prctl"
            f" PR_SET_CHILD_SUBREAPER: {os.strerror(code)}): not run"
        )
    before = set(_children())
    try:
        yield
    finally:
        try:
            _stop_adopted(before)
        finally:
            prctl(_PR_SET_CHILD_SUBREAPER, was.value, 0, 0, 0)


def _children() -> dict[tuple[int, int], int]:
    """postsync's child processes: (pid, start time) -> process group.

    /proc lists processes, not threads: a thread of postsync's is never among them; the
    start time tells a pid reused from the one it was.
    """
    me = os.getpid()
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as file:
                stat = file.read()
        except OSError:  # ended meanwhile
            continue
        # after the command's name, which may hold ") ": state, ppid, pgrp... (proc(5))
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[1]) == me:
            found[(int(entry.name), int(fields[19]))] = int(fields[2])
    return found


def _stop_adopted(before: set[tuple[int, int]]) -> None:
    """Stop and reap every child of postsync's not in `before`: SIGTERM (its group too
    when it leads one, as a detached process does), SIGKILL after GRACE seconds, until
    none is left (one ending hands its own children over to postsync)."""
    signalled: set[tuple[int, int]] = set()
    started = time.monotonic()
    while adopted := {key: pgid for key, pgid in _children().items() if key not in before}:
        late = time.monotonic() - started >= GRACE
        if time.monotonic() - started >= 3 * GRACE:  # unkillable (a D state): left
            return
        for (pid, start), pgid in adopted.items():
            if late or (pid, start) not in signalled:
                signum = signal.SIGKILL if late else signal.SIGTERM
                with contextlib.suppress(ProcessLookupError):
                    if pgid == pid:
                        os.killpg(pgid, signum)
                    else:
                        os.kill(pid, signum)
                signalled.add((pid, start))
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.02)
