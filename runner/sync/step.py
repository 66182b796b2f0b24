"""A sync step: find its control files, then apply each one in its own transaction."""

from __future__ import annotations

import codecs
import glob
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.core.errors import PlaybookError, StepError
from runner.core.text import plural
from runner.step.protocol import Action, Done

if TYPE_CHECKING:
    from runner.step.context import RunContext, StepScope

RETRY_MARK = "_tryback_"
GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class SyncConfig:
    command: str
    pattern: str
    files: tuple[Path, ...]
    encoding: str
    separator: str
    course_key: str
    user_key: str
    group_key: str


def _matches(scope: StepScope, pattern: str, include_retry: bool) -> list[Path]:
    area = scope.run.area
    full = pattern if Path(pattern).is_absolute() else f"{glob.escape(str(area))}/{pattern}"
    literal = not GLOB_CHARS & set(pattern)
    # Retry files are never picked up by a glob, only when named (or asked for).
    skip_retry = not (include_retry or literal or RETRY_MARK in pattern)
    found = []
    for match in sorted(glob.glob(full)):
        path = Path(match)
        if skip_retry and RETRY_MARK in path.name:
            continue
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(mode):
            continue  # directories, and symlinks: a control file is a real file
        found.append(scope.confine(str(path), "file"))
    return found


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # it is reported when it is opened


def configure(params: dict[str, Any], scope: StepScope) -> SyncConfig:
    """Render and check a sync step; list its control files (reads only)."""
    pattern = scope.render(params["file"], "file")
    encoding = params.get("encoding", "utf-8")
    try:
        encoding = codecs.lookup(encoding).name
    except LookupError:
        raise PlaybookError(
            [
                scope.error(
                    f"unknown encoding {encoding!r} (e.g. utf-8, iso-8859-1, cp1252)", "encoding"
                )
            ]
        ) from None
    scope.confine(str(Path(pattern).parent) if Path(pattern).parent != Path() else ".", "file")
    return SyncConfig(
        command=scope.step.kind,
        pattern=pattern,
        files=tuple(_matches(scope, pattern, bool(params.get("include_retry_files")))),
        encoding=encoding,
        separator=params.get("separator", ";"),
        course_key=params.get("course_key", "idnumber"),
        user_key=params.get("user_key", "idnumber"),
        group_key=params.get("group_key", "idnumber"),
    )


def run(config: SyncConfig, run: RunContext, emit: Any, progress: Any = None) -> tuple[str, str]:
    """Apply every control file; returns (status, detail). `emit(Done)` per file;
    `progress(bytes done, bytes in all, what)` per batch of lines."""
    from runner.record.model import FileOutcome
    from runner.sync import SYNC_COMMANDS
    from runner.sync.apply import sync_file
    from runner.sync.base import SyncOptions

    if not config.files:
        return "skipped", f"no file matches {config.pattern}"
    _engine, tables = run.database()
    command = SYNC_COMMANDS[config.command]
    options = SyncOptions(
        config.course_key,
        config.user_key,
        config.group_key,
        run.zone,
    )
    rejected = []
    changed = False
    lines = 0
    sizes = [_size(path) for path in config.files]
    total, before = sum(sizes), 0
    for path, size in zip(config.files, sizes, strict=True):

        def on_batch(done: int, count: int, path: Path = path, before: int = before) -> None:
            if progress is not None:
                progress(before + done, total, f"{path.name}: {count:,} lines")

        outcome = FileOutcome(config.command, path, config.encoding, config.separator)
        outcome.report = run.report_path(path)
        with open(outcome.report, "w", encoding="utf-8") as report:
            sync_file(
                run.transaction,
                tables,
                command,
                outcome,
                options,
                now=int(run.now.timestamp()),
                report=report,
                on_batch=on_batch,
            )
        before += size
        run.files.append(outcome)
        if outcome.error:
            rejected.append(f"{path.name}: {outcome.error}")
        else:
            run.lines_ok += outcome.changed + outcome.unchanged
            run.failed_lines += len(outcome.failed)
            changed |= outcome.changed > 0
            lines += outcome.lines
        emit(Done(Action("sync", run.display(path), outcome.summary())))
    if rejected:
        raise StepError("; ".join(rejected))
    return "changed" if changed else "ok", (
        f"{plural(len(config.files), 'file')}, {plural(lines, 'line')}"
    )
