"""The run record: what the sync did, saved under AREA/.postsync/runs/RUN_ID.json.

It is the boundary between sync and post-treatments (`postsync post RECORD`). Each
control file's report lines are in a file beside it (RUN_ID/NNN_NAME.report), so a
million-line file never has to be held in memory.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import shutil
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.core import secrets
from runner.core.errors import PlaybookError, Problem, StepError
from runner.record.model import FileOutcome, RunHeader
from runner.record.schema import RECORD_VERSION, record_schema
from runner.storage.atomic import atomic_write
from runner.storage.temporaries import remove_temporaries


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    seconds, rest = divmod(ns, 1_000_000_000)
    when = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)
    return when.isoformat()


#: where a control file's archive and retry file are: (archive, retry file), as text
Stored = Callable[[FileOutcome], tuple[str | None, str | None]]


def file_entry(f: FileOutcome, runs_dir: Path, stored: Stored | None = None) -> dict[str, Any]:
    """A control file's entry in the record (and in its applied marker); `stored`:
    where the run put its archive and retry file (else: where its record said)."""
    archive, retry_file = stored(f) if stored is not None else (None, None)
    return {
        "command": f.command,
        "path": str(f.path),
        "size": f.size,
        "sha256": f.sha256,
        "encoding": f.encoding,
        "separator": f.separator,
        "bom": f.bom,
        "header": base64.b64encode(f.header).decode("ascii"),
        "lines": {
            "total": f.lines,
            "changed": f.changed,
            "unchanged": f.unchanged,
            "failed": len(f.failed),
            "partly": f.partly,
            **({"missing": f.missing} if f.missing else {}),  # a snapshot's
            **({"same": f.same} if f.same else {}),  # a diffed snapshot's
        },
        **({"reconcile": f.reconcile} if f.reconcile else {}),
        "failed_lines": [line.as_json(f.encoding) for line in f.failed],
        "processed_courses": [{"id": i, "key": k} for i, k in sorted(f.courses.items())],
        "declared_groups": sorted(set(f.groups)),
        "report": str(f.report.relative_to(runs_dir)) if f.report else None,
        "error": f.error,
        "mtime": _iso(f.mtime_ns),
        "applied_by": f.applied_by,
        "mode": f.mode,
        "step": f.step,
        "retry_of": f.retry_of,
        "feed_sha256": f.feed_sha256,
        "archive": archive or f.archive,
        "retry_file": retry_file or f.retry_file,
        "journal": f.journal.as_json() if f.journal else None,
        "journal_error": f.journal_error,
    }


def build_record(
    header: RunHeader,
    files: Sequence[FileOutcome],
    steps: Sequence[Mapping[str, Any]],
    *,
    finished: bool,
    sync_complete: bool = False,
    complete: bool = False,
    stored: Stored | None = None,
    retries: str | None = None,
) -> dict[str, Any]:
    """The record's document: the run, its steps so far, each control file's outcome
    (`retries`: the run whose failed lines this one retried)."""
    return {
        "version": RECORD_VERSION,
        "run_id": header.run_id,
        "playbook": str(header.playbook),
        "name": header.name,
        "check": header.check,
        "started": header.started.isoformat(),
        "finished": datetime.now(header.started.tzinfo).isoformat() if finished else None,
        "area": str(header.area),
        "sync_complete": sync_complete,
        "complete": complete,
        "retries": retries,
        "steps": list(steps),
        "control_files": [file_entry(f, header.runs_dir, stored) for f in files],
    }


def save_record(
    header: RunHeader,
    files: Sequence[FileOutcome],
    steps: Sequence[Mapping[str, Any]],
    *,
    finished: bool,
    sync_complete: bool = False,
    complete: bool = False,
    stored: Stored | None = None,
    retries: str | None = None,
) -> Path:
    path = header.record_path
    path.parent.mkdir(parents=True, exist_ok=True)
    document = build_record(
        header,
        files,
        steps,
        finished=finished,
        sync_complete=sync_complete,
        complete=complete,
        stored=stored,
        retries=retries,
    )
    try:
        data = secrets.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        # a file name that is not UTF-8: JSON's \udcXX escapes keep its bytes
        # (json.loads gives back the very name, os.fsencode its bytes)
        data = secrets.dumps(document).encode("ascii")
    atomic_write(path, data + b"\n")
    return path


def prune_records(runs_dir: Path, keep_days: int, keep: str) -> int:
    """Remove records (and their report directories) older than `keep_days`.

    Through a descriptor of the runs directory opened without following a link: a
    symlink in its place, or among its entries, is never followed (entries that are
    links are left alone), so nothing outside the state directory is ever removed.
    """
    try:
        fd = os.open(runs_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise StepError(
                f"{runs_dir} is not a directory (a symlink?); postsync never follows a link"
                " in its state directory: remove it"
            ) from None
        raise
    try:
        remove_temporaries(runs_dir)
        cutoff = time.time() - keep_days * 86400
        removed = 0
        for entry in os.scandir(fd):
            if entry.name.startswith(keep):
                continue
            st = entry.stat(follow_symlinks=False)
            if st.st_mtime >= cutoff:
                continue
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(entry.name, dir_fd=fd)
            elif stat.S_ISREG(st.st_mode):
                os.unlink(entry.name, dir_fd=fd)
            else:
                continue  # a symlink (never followed, never ours), a FIFO...
            removed += 1
        return removed
    finally:
        os.close(fd)


@dataclass(frozen=True)
class LoadedRecord:
    file: Path
    data: dict[str, Any]

    def problem(self, key: str, message: str) -> Problem:
        return Problem(str(self.file), 1, 1, key, message)


_SAMPLE = 3


def _sample(data: Any) -> Any:
    """The record's first control files, their long lists cut to a few entries, for the
    schema (a record of a million-line file lists many thousands of failed lines; a
    malformed entry further on is caught when the record is read: `outcomes`)."""
    if not isinstance(data, dict) or not isinstance(data.get("control_files"), list):
        return data
    files = []
    for entry in data["control_files"][:_SAMPLE]:
        if isinstance(entry, dict):
            entry = dict(entry)
            for key in ("failed_lines", "processed_courses", "declared_groups"):
                if isinstance(entry.get(key), list):
                    entry[key] = entry[key][:_SAMPLE]
        files.append(entry)
    return {**data, "control_files": files}


@dataclass
class _Problem:
    path: list[Any]
    message: str


def _check_rest(data: dict[str, Any]) -> list[_Problem]:
    """The control files beyond the schema's sample: the same keys (their values are
    checked as they are read back)."""
    files = data["control_files"]
    if len(files) <= _SAMPLE:
        return []
    keys = set(files[0])
    return [
        _Problem(["control_files", i], "not a control file entry of this record version")
        for i, entry in enumerate(files[_SAMPLE:], start=_SAMPLE)
        if not isinstance(entry, dict) or set(entry) != keys
    ][:10]


def load_record(path: Path) -> LoadedRecord:
    """A saved run record, validated against its schema; PlaybookError (exit 4) if not."""
    from jsonschema import Draft202012Validator

    shown = str(path)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise PlaybookError([Problem(shown, 1, 1, "", "no such run record")]) from None
    except OSError as exc:
        raise PlaybookError([Problem(shown, 1, 1, "", f"cannot read: {exc.strerror}")]) from None
    except ValueError as exc:
        line, col = getattr(exc, "lineno", 1), getattr(exc, "colno", 1)
        raise PlaybookError([Problem(shown, line, col, "", f"not JSON: {exc}")]) from None
    errors = sorted(
        Draft202012Validator(record_schema()).iter_errors(_sample(data)),
        key=lambda e: list(e.path),
    )
    if not errors:
        errors = _check_rest(data)
    if errors:
        raise PlaybookError(
            [
                Problem(
                    shown,
                    1,
                    1,
                    ".".join(str(p) for p in e.path),
                    f"{e.message} (not a postsync run record of this version)",
                )
                for e in errors[:10]
            ]
        )
    return LoadedRecord(path.absolute(), data)
