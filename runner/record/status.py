"""The area's status: each playbook's last run, for `postsync status AREA` (health checks,
monitoring, a fleet's scheduler).

`AREA/.postsync/status.json` holds one entry per playbook file: its last real run (not a
preview), whether it saved a record or not (a night without control files saves none).
Written atomically at the end of each run, under the area's lock (one run of an area at
a time, so a read-modify-write loses no playbook's entry).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from runner.core import secrets
from runner.storage.atomic import atomic_write

NAME = "status.json"
#: more is not a status file postsync wrote
LIMIT = 1024 * 1024


@dataclass(frozen=True)
class LastRun:
    """A playbook's last run, as `postsync status` shows it."""

    playbook: str
    name: str
    run_id: str
    started: str
    finished: str
    exit_code: int
    interrupted: bool
    #: a run of some steps only (--tags, --skip-tags)
    partial: bool
    lines_ok: int
    lines_failed: int
    steps_failed: tuple[str, ...]
    record: str | None
    #: what failed outside the steps (a metrics file that cannot be written)
    problems: tuple[str, ...] = ()

    @property
    def finished_at(self) -> datetime:
        return datetime.fromisoformat(self.finished)


class StatusError(ValueError):
    """The status file cannot be read: what it holds is not postsync's."""


def status_path(state_dir: Path) -> Path:
    return state_dir / NAME


def load_status(state_dir: Path) -> list[LastRun]:
    """Each playbook's last run ([] when no run of the area finished yet);
    StatusError for a file that is not one postsync wrote."""
    path = status_path(state_dir)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return []
    except OSError as exc:  # a symlink (ELOOP), a permission
        raise StatusError(f"{path}: {exc.strerror or exc}") from None
    with open(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StatusError(f"{path}: not a regular file")
        data = file.read(LIMIT + 1)
    if len(data) > LIMIT:
        raise StatusError(f"{path}: larger than a status file")
    try:
        document = json.loads(data)
        return [_entry(entry) for entry in document["playbooks"].values()]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StatusError(f"{path}: not postsync's status ({type(exc).__name__})") from None


def _entry(raw: Mapping[str, object]) -> LastRun:
    """An entry of the file, each field of its type (TypeError, ValueError otherwise)."""

    def text(key: str) -> str:
        value = raw[key]
        if not isinstance(value, str):
            raise TypeError(key)
        return value

    def number(key: str) -> int:
        value = raw[key]
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(key)
        return value

    def flag(key: str) -> bool:
        value = raw[key]
        if not isinstance(value, bool):
            raise TypeError(key)
        return value

    def strings(key: str, *, optional: bool = False) -> tuple[str, ...]:
        # a key added since (problems) may be missing from an older postsync's file
        value = raw.get(key, []) if optional else raw[key]
        if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
            raise TypeError(key)
        return tuple(value)

    failed = strings("steps_failed")
    problems = strings("problems", optional=True)
    record = raw["record"]
    if record is not None and not isinstance(record, str):
        raise TypeError("record")
    entry = LastRun(
        playbook=text("playbook"),
        name=text("name"),
        run_id=text("run_id"),
        started=text("started"),
        finished=text("finished"),
        exit_code=number("exit_code"),
        interrupted=flag("interrupted"),
        partial=flag("partial"),
        lines_ok=number("lines_ok"),
        lines_failed=number("lines_failed"),
        steps_failed=failed,
        record=record,
        problems=problems,
    )
    if entry.finished_at.tzinfo is None:
        raise ValueError("finished")
    return entry


def save_status(state_dir: Path, entry: LastRun) -> None:
    """Replace the playbook's entry by this run's (the others' kept); an unreadable file
    is replaced (it is postsync's own state)."""
    try:
        kept = [e for e in load_status(state_dir) if e.playbook != entry.playbook]
    except StatusError:
        kept = []
    entries = {e.playbook: asdict(e) for e in [*kept, entry]}
    document = {"format": 1, "playbooks": entries}
    data = secrets.dumps(document, ensure_ascii=False, indent=1).encode("utf-8", "replace")
    atomic_write(status_path(state_dir), data + b"\n")
