"""A sync step: find its control files, then apply each one in its own transaction."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.core.errors import FilesRejected, PlaybookError, StepError
from runner.core.limits import limits
from runner.core.text import plural
from runner.step.globs import ControlGlob
from runner.step.protocol import Action, Done
from runner.storage.paths import FileState
from runner.sync.base import Chunks, Snapshot, SyncOptions
from runner.sync.config import SyncConfig
from runner.sync.encodings import canonical, line_oriented
from runner.sync.feed import check_feed, listed, lock_present, lock_reason, not_ready
from runner.sync.reader import MAX_LINE_BYTES
from runner.sync.tally import FilesTally, apply_file

if TYPE_CHECKING:
    from collections.abc import Callable

    from runner.step.facts import RunFacts
    from runner.step.ledger import SyncOutcomes
    from runner.step.scope import StepScope
    from runner.step.services import SyncServices


#: a control file is ready once unmodified for this long (an SFTP upload's pauses)
SETTLE_SECONDS = 60.0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # it is reported when it is opened


def configure(params: dict[str, Any], scope: StepScope) -> SyncConfig:
    """Render and check a sync step; list its control files (reads only)."""
    pattern = scope.render(params["file"], "file")
    if not pattern.strip():
        raise PlaybookError([scope.error("renders to an empty path; is a variable empty?", "file")])
    encoding = params.get("encoding", "utf-8")
    try:
        encoding = canonical(encoding)
    except LookupError:
        raise PlaybookError(
            [
                scope.error(
                    f"unknown encoding {encoding!r} (e.g. utf-8, iso-8859-1, cp1252)", "encoding"
                )
            ]
        ) from None
    if not line_oriented(encoding):
        raise PlaybookError(
            [
                scope.error(
                    f"encoding {params.get('encoding')!r} is not line-oriented (each character"
                    " of ASCII one byte, as control files are read line by line): convert the"
                    " file to UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)",
                    "encoding",
                )
            ]
        )
    scope.confine(str(Path(pattern).parent) if Path(pattern).parent != Path() else ".", "file")
    rule = ControlGlob.of(
        str(scope.run.area),
        pattern,
        include_retry=bool(params.get("include_retry_files")),
        label=f"{scope.step.label} ({pattern})",
    )
    lock = None
    if params.get("uploader_lock"):
        lock = scope.confine(params["uploader_lock"], "uploader_lock")
    found = listed(scope, rule, lock)
    settle = float(params.get("settle_seconds", SETTLE_SECONDS))
    now = time.time()
    ready: list[tuple[Path, os.stat_result]] = []
    waiting: list[tuple[Path, str]] = []
    locked = lock_present(lock)
    for path, st in found:
        why = "" if locked else not_ready(st, now, settle)
        if why is None:
            ready.append((path, st))
        else:  # under a lock: the reason is told once for the step
            waiting.append((path, why))
    # min_files and max_age_hours judge the feed: its own files, not its retry files
    feed = [(path, st) for path, st in found if not rule.is_retry(str(path))]
    return SyncConfig(
        command=scope.step.kind,
        pattern=pattern,
        glob=rule,
        files=tuple(path for path, _ in ready),
        states=tuple(FileState.of(st) for _, st in ready),
        encoding=encoding,
        separator=params.get("separator", ";"),
        options=SyncOptions(
            course_key=params.get("course_key", "idnumber"),
            user_key=params.get("user_key", "idnumber"),
            group_key=params.get("group_key", "idnumber"),
            tz=scope.run.zone,
            allow_disabled=bool(params.get("allow_disabled_instances", False)),
            membership_component=params.get("membership_component", ""),
            modifier=params.get("modifierid", 0),
            update_emails=bool(params.get("update_emails", False)),
            update_passwords=bool(params.get("update_passwords", False)),
            create_passwords=bool(params.get("create_passwords", False)),
            cohort_key=params.get("cohort_key", "idnumber"),
            create_cohorts=bool(params.get("create_cohorts", True)),
            max_changes=_limits(params, scope),
            snapshot=_snapshot(params, scope),
            allow_admin_updates=bool(params.get("allow_admin_updates", False)),
            commit_every=_chunks(params, scope),
        ),
        min_files=scope.integer(params.get("min_files", 0), "min_files", 0),
        max_age_hours=_hours(params.get("max_age_hours"), scope),
        mtimes=tuple(st.st_mtime for _, st in feed),
        waiting=tuple(waiting),
        uploader_lock=lock,
        max_line_bytes=int(params.get("max_line_bytes", MAX_LINE_BYTES)),
        key=f"{scope.step.kind} {params['file']}",
        newest_file=max(feed, key=lambda f: f[1].st_mtime)[0] if feed else None,
    )


def _chunks(params: dict[str, Any], scope: StepScope) -> Chunks | None:
    """`commit_every`: lines and seconds (the schema checked their types)."""
    every = params.get("commit_every")
    if every is None:
        return None
    if params.get("mode", "commands") == "snapshot":
        raise PlaybookError(
            [
                scope.error(
                    "commit_every is not for mode: snapshot (what the file misses is known"
                    " only at its end, so a snapshot is applied in one transaction)",
                    "commit_every",
                )
            ]
        )
    seconds = every.get("seconds")
    return Chunks(every.get("lines"), None if seconds is None else float(seconds))


def _hours(value: float | str | None, scope: StepScope) -> float | None:
    """max_age_hours: a number of hours > 0, or a template rendering to one, or to
    nothing (no limit: `"{{ 26 if nightly else '' }}"`)."""
    if value is None or isinstance(value, int | float):
        return value
    text = str(scope.render(value, "max_age_hours")).strip()
    if not text:
        return None
    try:
        hours = float(text)
    except ValueError:
        hours = 0.0
    if not hours > 0 or hours == float("inf"):
        raise PlaybookError(
            [scope.error(f"renders to {text!r}, not a number of hours > 0", "max_age_hours")]
        )
    return hours


def run(
    config: SyncConfig,
    run: RunFacts,
    ledger: SyncOutcomes,
    services: SyncServices,
    emit: Callable[[Done], None],
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[str, str]:
    """Apply every control file, adding each one's outcome to the ledger; returns
    (status, detail). `emit(Done)` per file; `progress(bytes done, bytes in all, what)`
    per batch of lines."""
    from runner.record.model import FileOutcome
    from runner.sync import SYNC_COMMANDS, recover
    from runner.sync.reader import NotRead, NotReady

    warning = check_feed(config, run.now.timestamp())
    recovery = ledger.recovery
    recovery.considered(config.glob)
    waiting = len(config.waiting)
    for path, why in config.waiting:
        emit(Done(Action("leave", run.display(path), why or lock_reason(config, run))))
    if not config.files:
        if waiting:
            return "skipped", f"{plural(waiting, 'file')} not ready, left for the next run"
        left = config.glob.retry_files_left()
        why = f" ({plural(left, 'retry file')} left alone: no include_retry_files)" if left else ""
        return "skipped", f"no file matches {config.pattern}{why}"
    if warning is not None and config.newest_file is not None:
        emit(Done(Action("warning", run.display(config.newest_file), warning)))
    engine, tables = services.database()
    recover.load(run, recovery, engine)
    command = SYNC_COMMANDS[config.command]
    options = config.options
    if options.snapshot is not None and not run.check:
        from runner.db import own_tables

        own_tables.ensure_snapshots(engine)
    if options.snapshot is not None and config.feed_files > 1:
        names = ", ".join(run.display(p) for p in config.files if not config.glob.is_retry(str(p)))
        raise StepError(
            f"mode: snapshot reads one file, the whole truth: {config.feed_files} match"
            f" ({names}); nothing applied: leave only the newest (move the others away)"
        )
    tally = FilesTally()
    sizes = [_size(path) for path in config.files]
    total, before = sum(sizes), 0
    for path, expected, size in zip(config.files, config.states, sizes, strict=True):
        if lock_present(config.uploader_lock):  # the uploader began meanwhile
            waiting += 1
            emit(Done(Action("leave", run.display(path), lock_reason(config, run))))
            continue

        def on_batch(done: int, count: int, path: Path = path, before: int = before) -> None:
            if progress is not None:
                progress(before + done, total, f"{path.name}: {count:,} lines")

        try:
            number = len(ledger.files) + 1
            found = recover.recovered(
                run, recovery, services, engine, path, expected, config.key, number
            )
            if isinstance(found, FileOutcome):  # applied by a killed run
                outcome = found
            else:  # to apply, or to resume after the chunks a killed run committed
                if found is None:
                    outcome = FileOutcome(
                        config.command, path, config.encoding, config.separator, step=config.key
                    )
                else:
                    assert found.outcome is not None  # recover.recovered gives it
                    outcome = found.outcome
                apply_file(
                    run,
                    ledger,
                    services,
                    tables,
                    command,
                    # a retry file holds failed lines only: never a snapshot
                    replace(options, snapshot=None) if config.glob.is_retry(str(path)) else options,
                    outcome,
                    number=number,
                    key=config.key,
                    max_line_bytes=config.max_line_bytes,
                    expected=expected,
                    on_batch=on_batch,
                    resume=found,
                )
        except NotReady as exc:  # still being written: left as it is, not processed
            waiting += 1
            emit(Done(Action("leave", run.display(path), f"not ready: {exc}")))
            continue
        except NotRead as exc:  # not the file listed: nothing read, nothing recorded
            emit(tally.rejects(run.display(path), str(exc)))
            continue
        before += size
        emit(tally.add(ledger, outcome, run.display(path)))
    applied = len(config.files) - (waiting - len(config.waiting))
    detail = f"{plural(applied, 'file')}, {plural(tally.lines, 'line')}"
    if waiting:
        detail += f"; {plural(waiting, 'file')} not ready, left for the next run"
    if warning is not None:
        detail += " (warning: the newest file is dated in the future, see above)"
    rejected = tally.rejection("rejected: nothing of {what} applied, left in place")
    if rejected is not None:
        # the other files were applied: the run goes on with them, and fails at the end
        raise FilesRejected(rejected)
    if not applied:  # every file was left: nothing was done
        return "skipped", detail
    return tally.status, detail


def _limits(params: dict[str, Any], scope: StepScope) -> dict[str, tuple[int | str, str]]:
    try:
        return limits(params, "max_unenrolments", "unenrol")
    except ValueError as exc:
        raise PlaybookError([scope.error(str(exc), "max_unenrolments")]) from None


def _snapshot(params: dict[str, Any], scope: StepScope) -> Snapshot | None:
    """`mode: snapshot`, its `missing` action and the step's name in postsync's record
    of the snapshots taken (area, command, file pattern, scope)."""
    if params.get("mode", "commands") != "snapshot":
        return None
    missing = params.get("missing")
    if missing is None:
        raise PlaybookError(
            [
                scope.error(
                    "mode: snapshot needs `missing`: what becomes of what the file does not list",
                    "mode",
                )
            ]
        )
    if scope.step.kind == "users" and "scope" not in params:
        raise PlaybookError(
            [scope.error("a users snapshot needs `scope: {auth: NAME}`: whose truth it is", "mode")]
        )
    where = json.dumps([params.get("scope", "named"), params.get("enrol")], sort_keys=True)
    step = f"{scope.run.area} {scope.step.kind} {params['file']} {where} {missing}"
    first = params.get("first_snapshot", "refuse") == "apply"
    area = params.get("scope", "named")
    kept = None
    if params.get("diff"):
        name = hashlib.sha256(step.encode()).hexdigest()[:32]
        kept = scope.run.state_dir / "snapshots" / f"{name}.csv"
    return Snapshot(
        missing,
        step,
        scope.run.run_id,
        first,
        area,
        params.get("enrol", "manual"),
        kept=kept,
        full_every=int(params.get("full_every", 7)),
        full=scope.run.full_reconcile,
    )
