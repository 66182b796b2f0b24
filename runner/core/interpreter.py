"""The interpreter tuned for bulk work: a control file applied, a post-treatment's
thousands of items; and interruptions held while a commit and the note of it are made."""

from __future__ import annotations

import gc
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: how long a thread runs before another waiting for Python's lock gets it, while a file
#: is applied (Python's default: 5 ms)
SWITCH_SECONDS = 0.0002


@contextmanager
def paused_collector() -> Iterator[None]:
    """Python's cycle collector paused for the block, as it was after it; what the
    block made and still holds set aside from its later passes (`released` gives it
    back).

    Bulk work allocates many small containers (a file's lines and their values, a
    step's rows, actions and journal lines) that hold no reference cycles, while the
    state it keeps grows; the collector would walk that state again and again (a
    quarter of the time of a million-line file, and of clean_empty_groups deleting
    30,000 groups, measured). Reference counting still frees everything. Once the
    block is done, its results live until the run ends: the collector's first pass
    would walk them all once more (60 ms after that clean_empty_groups, 90 ms after a
    200,000-line file) to find a few hundred objects of garbage (206 and 170
    measured); they are frozen instead (gc.freeze), so its passes skip them.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()


def released() -> None:
    """What the blocks above set aside made collectable again: at the end of a command,
    for a process that goes on (a test calling the command's function)."""
    gc.unfreeze()


@contextmanager
def tuned_interpreter() -> Iterator[None]:
    """The cycle collector paused, and threads switched sooner, while a file is applied.

    The batch writer (runner.sync.writes) waits for the database without Python's
    lock, but takes it back at each step of a statement's exchange with the server;
    with the main thread simulating lines, each step waited up to Python's 5 ms switch
    interval (1,000,000 lines on PostgreSQL: 3% faster with 0.2 ms, 8% on 300,000;
    SQLite unchanged).
    """
    switch = sys.getswitchinterval()
    sys.setswitchinterval(min(switch, SWITCH_SECONDS))
    try:
        with paused_collector():
            yield
    finally:
        sys.setswitchinterval(switch)


@contextmanager
def uninterrupted() -> Iterator[None]:
    """SIGINT and SIGTERM held until the block ends, then delivered to their handlers.

    For a commit and the bookkeeping that says it happened: Python runs a signal's
    handler between any two bytecodes, so an interruption raised just after the
    database committed, before the code noted it, would have the run take the commit
    for undone. Only the handlers Python code installed are held (the default ones end
    the process at once, where nothing is noted); a commit is one call into the driver,
    which Python does not interrupt anyway. Also for stopping a script's processes when
    postsync is interrupted: a second Ctrl-C must not leave them running. In the main
    thread only, where handlers run.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        held.append(signum)

    previous = {
        number: signal.signal(number, hold)
        for number in (signal.SIGINT, signal.SIGTERM)
        if callable(signal.getsignal(number))
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if held:
            signal.raise_signal(held[0])
