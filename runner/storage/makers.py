"""Who made a file, and whether that process is gone: this host's name (hashed), a
process id and the process's start time.

A process id alone is not an identity: the kernel reuses ids. With its start time (in
clock ticks since boot, /proc/PID/stat) it is: the same id with another start time is
another process, so the maker is gone. Nothing can be known of another host's
processes: a file made there is never taken for a dead process's.
"""

from __future__ import annotations

import hashlib
import os
import socket
from functools import cache


@cache
def host() -> str:
    """This host, as 8 hex digits of its name's sha256."""
    return hashlib.sha256(socket.gethostname().encode("utf-8", "surrogateescape")).hexdigest()[:8]


def start_time(pid: int) -> tuple[str, str] | None:
    """(state, start time) of process `pid`, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # "PID (COMM) STATE ..." where COMM may hold spaces and parentheses
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode("ascii", "replace"), fields[19].decode("ascii")


def me() -> str:
    """This process, as its temporary files name it: HOST-PID-START (START 0: unknown)."""
    return _process(os.getpid())


@cache
def _process(pid: int) -> str:
    try:
        found = start_time(pid)
    except (OSError, ValueError, IndexError):
        found = None
    return f"{host()}-{pid}-{found[1] if found else 0}"


def gone(maker_host: str, pid: int, start: str) -> bool:
    """Whether the process (`maker_host`, `pid`, `start`) is provably no longer running:
    of this host, and its id free, a zombie's, or another process's (another start
    time). Unknown (no /proc to look in) is not gone."""
    if maker_host != host() or me().endswith("-0"):
        return False
    if f"{maker_host}-{pid}-{start}" == me():
        return False  # this very process: its own temporaries are its to remove
    try:
        found = start_time(pid)
    except (OSError, ValueError, IndexError):
        return False
    if found is None:
        return True
    state, started = found
    return state in ("Z", "X") or started != start
