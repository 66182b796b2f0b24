"""A run's change journal read back for an undo: its parts, in the order the run wrote
them, each line checked (a corrupt line is named by its part and line), never through
a symlink nor from anything but a regular file (a FIFO is not waited on)."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.core.errors import PlaybookError, Problem
from runner.record.journal import JOURNAL_SUFFIX, KINDS
from runner.record.store import LoadedRecord
from runner.storage import paths

#: the kinds a treatment's part holds (clean_empty_groups): the deleted row's columns
DELETED_KINDS = ("group_deleted", "grouping_deleted")
KNOWN = frozenset(KINDS) | frozenset(DELETED_KINDS)


@dataclass(frozen=True)
class Change:
    """One journal line: its kind, its fields, and where it came from (the control
    file and line, or the post-treatment, as users read it)."""

    kind: str
    fields: dict[str, Any]
    origin: str


def _origin(entry: dict[str, Any]) -> str:
    if entry.get("step"):
        return str(entry["step"])
    if entry.get("line") is None:  # a snapshot's change to a row its file does not list
        return f"{entry.get('file')} (missing from the snapshot)"
    return f"{entry.get('file')} line {entry.get('line')}"


def _open(path: Path) -> int:
    """A descriptor of `path`, a regular file, opened without following a symlink and
    without waiting on a FIFO; PlaybookError naming the part otherwise."""
    try:
        fd, _ = paths.open_regular(path)
    except paths.NotRegular as exc:
        raise PlaybookError(
            [Problem(str(path), 1, 1, "", f"journal part is {exc.what}, not a file postsync wrote")]
        ) from None
    except OSError as exc:
        reason = (
            "is a symbolic link: not followed (a journal part is a file postsync wrote)"
            if exc.errno == errno.ELOOP
            else f"cannot be read: {exc.strerror}"
        )
        raise PlaybookError([Problem(str(path), 1, 1, "", f"journal part {reason}")]) from None
    return fd


def _corrupt(path: Path, number: int, what: str) -> PlaybookError:
    return PlaybookError(
        [
            Problem(
                str(path),
                number,
                1,
                "",
                f"corrupt journal line: {what}; the run cannot be undone from a journal"
                " that is not the one it wrote (restore the part from a backup)",
            )
        ]
    )


def _lines(path: Path) -> Iterator[Change]:
    fd = _open(path)
    with os.fdopen(fd, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                entry = json.loads(raw)
            except ValueError as exc:
                raise _corrupt(path, number, f"not JSON ({exc})") from None
            if not isinstance(entry, dict):
                raise _corrupt(path, number, "not a JSON object")
            if entry.get("seq") != number:
                raise _corrupt(path, number, f"seq {entry.get('seq')!r}, expected {number}")
            kind = entry.get("kind")
            if kind not in KNOWN:
                raise _corrupt(path, number, f"unknown kind {kind!r}")
            yield Change(str(kind), entry, _origin(entry))


def part_paths(record: LoadedRecord) -> list[Path]:
    """The run's journal parts, in the order the run wrote them; PlaybookError when the
    record is of a preview, of a postsync before the journal, or a part is missing."""
    data = record.data
    if data["check"]:
        raise PlaybookError(
            [
                record.problem(
                    "check",
                    "this record is from a --check run: nothing was changed, nothing to"
                    " undo; undo the record of a real run",
                )
            ]
        )
    run_dir = record.file.parent / str(data["run_id"])
    files = data["control_files"]
    named = [f for f in files if f.get("journal")]
    if files and not any("journal" in f for f in files):
        raise PlaybookError(
            [
                record.problem(
                    "control_files",
                    "this run has no change journal: runs made before postsync kept one"
                    " cannot be undone",
                )
            ]
        )
    try:
        names = sorted(
            entry.name for entry in os.scandir(run_dir) if entry.name.endswith(JOURNAL_SUFFIX)
        )
    except FileNotFoundError:
        names = []
    except OSError as exc:
        raise PlaybookError(
            [record.problem("", f"cannot list the run's directory {run_dir}: {exc.strerror}")]
        ) from None
    missing = [
        f["report"]
        for f in named
        if Path(f["report"]).with_suffix(JOURNAL_SUFFIX).name not in names
    ]
    if missing:
        part = Path(missing[0]).with_suffix(JOURNAL_SUFFIX)
        raise PlaybookError(
            [
                record.problem(
                    "control_files",
                    f"the journal part {record.file.parent / part} that the record names is"
                    " missing: the run cannot be undone whole",
                )
            ]
        )
    return [run_dir / name for name in names]


def changes(paths: list[Path]) -> Iterator[Change]:
    """Every change of the parts, in order."""
    for path in paths:
        yield from _lines(path)
