"""A saved run record is input like any other: `postsync post` checks all of it before
anything runs. A record names files that post-treatments copy and delete, and a run id
that becomes directory names: every one of them must stay where postsync put it.
"""

from __future__ import annotations

import os
import re
import stat
from datetime import datetime
from pathlib import Path
from typing import Any

from runner.core.errors import PlaybookError, Problem
from runner.record.store import LoadedRecord

#: what postsync names its runs: 20261124T010002-3fa9c1
RUN_ID = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{6}$")
#: a control file's report beside the record: RUN_ID/NNN_NAME.report
REPORT = re.compile(r"^(?P<run>[^/]+)/\d{3}_[^/]+\.report$")


def _time(value: Any, *, optional: bool = False) -> str | None:
    """Why `value` is not an aware ISO 8601 time, or None."""
    if value is None and optional:
        return None
    try:
        when = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return f"{value!r} is not an ISO 8601 time"
    if when.tzinfo is None:
        return f"{value!r} has no time zone"
    return None


def check_header(record: LoadedRecord) -> None:
    """The run id, the times, and the record's own name; PlaybookError (exit 4)."""
    data, problems = record.data, []
    run_id = data["run_id"]
    if not RUN_ID.match(run_id):
        problems.append(record.problem("run_id", f"{run_id!r} is not a postsync run id"))
    elif record.file.name != f"{run_id}.json":
        problems.append(
            record.problem("run_id", f"the record of run {run_id} is named {record.file.name}")
        )
    for key, optional in (("started", False), ("finished", True)):
        if reason := _time(data[key], optional=optional):
            problems.append(record.problem(key, reason))
    if os.path.islink(record.file):
        problems.append(record.problem("", "the record is a symlink; give the record itself"))
    if problems:
        raise PlaybookError(problems)


def _regular_or_gone(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return True  # deleted already: post-treatments take that into account


def _inside(path: Path, parent: Path) -> bool:
    text, top = str(path), str(parent)
    return text == top or text.startswith(top.rstrip("/") + "/")


def check_place(record: LoadedRecord, area: Path) -> None:
    """The record is one of this area's (AREA/.postsync/runs/RUN_ID.json), and every
    file it names is where the sync found it or wrote it."""
    runs = area / ".postsync" / "runs"
    here = Path(os.path.realpath(record.file.parent))
    if here != runs or os.path.realpath(runs) != str(runs):
        raise PlaybookError(
            [
                record.problem(
                    "",
                    f"records stay in AREA/.postsync/runs ({runs}); this one is in {here}:"
                    " give its path there",
                )
            ]
        )
    state = area / ".postsync"
    problems: list[Problem] = []
    real: dict[Path, bool] = {}  # directory -> no symlink on its way (one lookup each)
    for i, entry in enumerate(record.data["control_files"]):
        where = f"control_files.{i}"
        raw = entry["path"]
        path = Path(raw)
        if not path.is_absolute() or os.path.normpath(raw) != raw:
            problems.append(
                record.problem(f"{where}.path", f"{raw!r} is not a normal absolute path")
            )
        elif not _inside(path, area) or _inside(path, state):
            problems.append(
                record.problem(f"{where}.path", f"{raw} is not a control file of the area {area}")
            )
        elif not real.setdefault(path.parent, os.path.realpath(path.parent) == str(path.parent)):
            problems.append(
                record.problem(f"{where}.path", f"{raw} is reached through a symlink; refused")
            )
        elif not _regular_or_gone(path):
            problems.append(record.problem(f"{where}.path", f"{raw} is not a regular file"))
        report = entry["report"]
        if report is not None:
            match = REPORT.match(report)
            if not match or match["run"] != record.data["run_id"] or ".." in report:
                problems.append(
                    record.problem(
                        f"{where}.report",
                        f"{report!r} is not a report of this run (RUN_ID/NNN_NAME.report)",
                    )
                )
            elif os.path.islink(runs / report) or os.path.islink(runs / match["run"]):
                problems.append(record.problem(f"{where}.report", f"{report} is a symlink"))
        if entry.get("mtime") is not None and (reason := _time(entry["mtime"])):
            problems.append(record.problem(f"{where}.mtime", reason))
        if len(problems) >= 10:
            break
    if problems:
        raise PlaybookError(problems)
