"""`postsync retry RECORD`: what it retries, and what later retries did since.

A retry applies the failed lines of a saved run again, each through the sync step that
applied it; its record names the run it retries (`retries`), and each of its control
files the file the lines come from (`feed_sha256`: their line numbers are that file's).
So a line a retry applied is found as not failed any more by the next retry of the same
run, or of that retry (a retry of a retry), whichever record it is given.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from runner.record.model import FailedLine, FileOutcome

#: a control file the lines of a run come from: its path (as text) and sha256
Feed = tuple[str, str]


@dataclass(frozen=True)
class RetryOf:
    """The run a retry applies the failed lines of: its id and start, and its control
    files with failed lines by the sync step of the playbook that applies them again
    (the step's key: its command and file pattern as written; runner.sync.config)."""

    run_id: str
    started: datetime
    files: Mapping[str, tuple[FileOutcome, ...]]


@dataclass(frozen=True)
class Attempt:
    """The latest retry of a file's lines since the retried run: its run, and the
    numbers of the lines still failing after it."""

    run_id: str
    failed: frozenset[int]


def _latest(
    found: dict[Feed, tuple[datetime, str, frozenset[int]]], data: Mapping[str, Any]
) -> None:
    started = datetime.fromisoformat(data["started"])
    run_id = str(data["run_id"])
    for entry in data["control_files"]:
        if entry.get("error"):
            continue  # rejected: nothing of it was applied, nothing learnt
        feed = (str(entry["path"]), str(entry.get("feed_sha256") or entry["sha256"]))
        failed = frozenset(int(line["number"]) for line in entry["failed_lines"])
        if feed not in found or (started, run_id) > found[feed][:2]:
            found[feed] = (started, run_id, failed)


def _records(runs_dir: Path, skip: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """The real runs' records of an area but those of the run ids in `skip`, in name
    order. The records are postsync's own; one that cannot be read as a record (a torn
    or foreign file, a symlink) is passed over: what is learnt from them only ever
    narrows what is done again."""
    try:
        names = sorted(os.listdir(runs_dir))
    except OSError:
        return
    for name in names:
        if not name.endswith(".json") or name.removesuffix(".json") in skip:
            continue
        path = runs_dir / name
        if path.is_symlink():
            continue
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and not data.get("check"):
            yield data


def later_attempts(runs_dir: Path, retry: RetryOf, own: str) -> dict[Feed, Attempt]:
    """For each control file of the retried run that a later retry took up (any retry
    record of the area that started after it, but this run `own`), the latest one."""
    found: dict[Feed, tuple[datetime, str, frozenset[int]]] = {}
    for data in _records(runs_dir, (retry.run_id, own)):
        try:
            if not data.get("retries"):
                continue
            if datetime.fromisoformat(data["started"]) <= retry.started:
                continue
            _latest(found, data)
        except (ValueError, KeyError, TypeError):
            continue
    return {feed: Attempt(run_id, failed) for feed, (_s, run_id, failed) in found.items()}


def taken_back(runs_dir: Path, path: str, own: str) -> str | None:
    """The run (but `own`) that read `path` as a control file: a retry file dropped back
    in the area and applied (include_retry_files), its lines applied again."""
    for data in _records(runs_dir, (own,)):
        try:
            if any(entry["path"] == path for entry in data["control_files"]):
                return str(data["run_id"])
        except (KeyError, TypeError):
            continue
    return None


def still_failing(outcome: FileOutcome, attempts: Mapping[Feed, Attempt]) -> list[FailedLine]:
    """The failed lines of the retried run's `outcome` that no later retry applied."""
    path, sha256 = outcome.feed
    attempt = attempts.get((str(path), sha256))
    if attempt is None:
        return list(outcome.failed)
    return [line for line in outcome.failed if line.number in attempt.failed]
