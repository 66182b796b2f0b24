"""A sync step: find its control files, then apply each one in its own transaction."""

from __future__ import annotations

import glob
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.core.errors import FilesRejected, PlaybookError, StepError
from runner.core.text import plural
from runner.step.globs import ControlGlob
from runner.step.protocol import Action, Done
from runner.storage.paths import FileState
from runner.sync.encodings import canonical, line_oriented
from runner.sync.reader import MAX_LINE_BYTES

if TYPE_CHECKING:
    from collections.abc import Callable

    from runner.step.facts import RunFacts
    from runner.step.ledger import SyncOutcomes
    from runner.step.scope import StepScope
    from runner.step.services import SyncServices


@dataclass(frozen=True)
class SyncConfig:
    command: str
    pattern: str
    #: the rule of the pattern: which paths this step reads (runner.step.globs)
    glob: ControlGlob
    #: the matching files ready to be read, in name order
    files: tuple[Path, ...]
    #: each ready file as it was listed: the file the sync must read, unchanged
    states: tuple[FileState, ...]
    encoding: str
    separator: str
    course_key: str
    user_key: str
    group_key: str
    allow_disabled: bool = False
    membership_component: str = ""
    modifier: int | str = 0
    update_emails: bool = False
    update_passwords: bool = False
    create_passwords: bool = False
    allow_admin_updates: bool = False
    cohort_key: str = "idnumber"
    create_cohorts: bool = True
    min_files: int = 0
    max_unenrolments: int | str | None = None
    max_age_hours: float | None = None
    #: the listed files' modification times; `newest_file`: the newest of the files
    mtimes: tuple[float, ...] = ()
    #: the matching files not ready (still being written), and why: left as they are
    waiting: tuple[tuple[Path, str], ...] = ()
    #: the uploader's lock file (tool_sync's alock.txt): present, no file is ready
    uploader_lock: Path | None = None
    max_line_bytes: int = MAX_LINE_BYTES
    newest_file: Path | None = None
    #: the step as a marker of an applied file names it: its command and its file
    #: pattern as the playbook writes it (before rendering)
    key: str = ""


#: a control file is ready once unmodified for this long (an SFTP upload's pauses)
SETTLE_SECONDS = 60.0


def _matches(
    scope: StepScope, rule: ControlGlob, lock: Path | None
) -> list[tuple[Path, os.stat_result]]:
    found = []
    for match in sorted(glob.glob(rule.pattern)):
        if rule.skips(os.path.basename(match)):
            continue  # retry files: never picked up by a glob, only when named or asked for
        if rule.in_state(os.path.normpath(os.path.join(scope.run.area, match))):
            continue  # an area's state (this one's, or a nested area's): never a control file
        try:
            st = os.lstat(match)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue  # directories, and symlinks: a control file is a real file
        path = scope.confine(match, "file")
        if path != lock:  # the uploader's lock file is no control file
            found.append((path, st))
    return found


def _not_ready(st: os.stat_result, now: float, settle: float) -> str | None:
    """Why a listed file is not ready (None: it is): modified less than `settle`
    seconds ago, so perhaps still being uploaded. A modification time in the future
    (the uploader's clock, or its `touch -d`) cannot tell: the change time, which this
    machine's kernel (or the file server) sets at every write, is judged instead."""
    age = now - st.st_mtime
    if age < 0:
        if now - st.st_ctime < settle:
            return (
                "its modification time is in the future (a clock out of step?) and it"
                f" changed less than settle_seconds {settle:g} ago: left for the next run"
            )
        return None
    if age < settle:
        return (
            f"modified less than settle_seconds {settle:g} ago: still being written?"
            " left for the next run"
        )
    return None


def _lock_present(lock: Path | None) -> bool:
    return lock is not None and os.path.lexists(lock)


def _lock_reason(config: SyncConfig, run: RunFacts) -> str:
    assert config.uploader_lock is not None
    return (
        f"{run.display(config.uploader_lock)} is in the area (uploader_lock): the"
        " uploader is still writing; left for the next run"
    )


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
    found = _matches(scope, rule, lock)
    settle = float(params.get("settle_seconds", SETTLE_SECONDS))
    now = time.time()
    ready: list[tuple[Path, os.stat_result]] = []
    waiting: list[tuple[Path, str]] = []
    locked = _lock_present(lock)
    for path, st in found:
        why = "" if locked else _not_ready(st, now, settle)
        if why is None:
            ready.append((path, st))
        else:  # under a lock: the reason is told once for the step
            waiting.append((path, why))
    return SyncConfig(
        command=scope.step.kind,
        pattern=pattern,
        glob=rule,
        files=tuple(path for path, _ in ready),
        states=tuple(FileState.of(st) for _, st in ready),
        encoding=encoding,
        separator=params.get("separator", ";"),
        course_key=params.get("course_key", "idnumber"),
        user_key=params.get("user_key", "idnumber"),
        group_key=params.get("group_key", "idnumber"),
        allow_disabled=bool(params.get("allow_disabled_instances", False)),
        membership_component=params.get("membership_component", ""),
        modifier=params.get("modifierid", 0),
        update_emails=bool(params.get("update_emails", False)),
        update_passwords=bool(params.get("update_passwords", False)),
        create_passwords=bool(params.get("create_passwords", False)),
        allow_admin_updates=bool(params.get("allow_admin_updates", False)),
        cohort_key=params.get("cohort_key", "idnumber"),
        create_cohorts=bool(params.get("create_cohorts", True)),
        min_files=int(params.get("min_files", 0)),
        max_unenrolments=params.get("max_unenrolments"),
        max_age_hours=params.get("max_age_hours"),
        mtimes=tuple(st.st_mtime for _, st in found),
        waiting=tuple(waiting),
        uploader_lock=lock,
        max_line_bytes=int(params.get("max_line_bytes", MAX_LINE_BYTES)),
        key=f"{scope.step.kind} {params['file']}",
        newest_file=max(found, key=lambda f: f[1].st_mtime)[0] if found else None,
    )


#: how far ahead of the clock a control file's modification time may be before
#: max_age_hours warns (a file server's clock a little ahead is common)
SKEW = 60.0


def check_feed(config: SyncConfig, now: float, clock: float | None = None) -> str | None:
    """StepError when the feed did not come (min_files) or is stale (max_age_hours:
    judged by the files not dated in the future); a warning when a file is dated in
    the future, whose age max_age_hours cannot tell (`clock`: the time now, when the
    files were listed)."""
    found = len(config.files)
    if found < config.min_files:
        waiting = (
            f"; {plural(len(config.waiting), 'more file')} not ready yet (still being written)"
            if config.waiting
            else ""
        )
        raise StepError(
            f"{plural(found, 'ready control file')} {'matches' if found == 1 else 'match'}"
            f" {config.pattern}, fewer than min_files {config.min_files}{waiting}: did"
            " the feed run? (nothing of this step applied)"
        )
    if config.max_age_hours is None or not config.mtimes:
        return None
    # a file dated in the future tells no age: left out, or one of them beside a stale
    # feed would make it look fresh (every file so dated: nothing to judge, a warning)
    clock = time.time() if clock is None else clock
    dated = [m for m in config.mtimes if m - clock <= SKEW]
    if dated:
        age = (now - max(dated)) / 3600
        if age > config.max_age_hours:
            some = " not dated in the future" if len(dated) < len(config.mtimes) else ""
            raise StepError(
                f"the newest file matching {config.pattern}{some} is {age:.1f} hours old, older"
                f" than max_age_hours {config.max_age_hours:g}: a stale feed? (nothing of"
                " this step applied)"
            )
    ahead = max(config.mtimes) - clock
    if ahead > SKEW:
        return (
            f"modified {ahead / 3600:.1f} hours in the future: clock skew between the"
            " machine that wrote it and this one? max_age_hours cannot tell its age"
        )
    return None


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
    from runner.sync.apply import sync_file
    from runner.sync.base import SyncOptions
    from runner.sync.reader import NotRead, NotReady
    from runner.sync.report import Report

    warning = check_feed(config, run.now.timestamp())
    recovery = ledger.recovery
    recovery.considered(config.glob)
    waiting = len(config.waiting)
    for path, why in config.waiting:
        emit(Done(Action("leave", run.display(path), why or _lock_reason(config, run))))
    if not config.files:
        if waiting:
            return "skipped", f"{plural(waiting, 'file')} not ready, left for the next run"
        return "skipped", f"no file matches {config.pattern}"
    if warning is not None and config.newest_file is not None:
        emit(Done(Action("warning", run.display(config.newest_file), warning)))
    engine, tables = services.database()
    recover.load(run, recovery, engine)
    command = SYNC_COMMANDS[config.command]
    options = SyncOptions(
        config.course_key,
        config.user_key,
        config.group_key,
        run.zone,
        config.allow_disabled,
        config.membership_component,
        config.modifier,
        config.update_emails,
        config.update_passwords,
        config.create_passwords,
        config.cohort_key,
        config.create_cohorts,
        config.max_unenrolments,
        allow_admin_updates=config.allow_admin_updates,
    )
    rejected = []
    changed = False
    lines = failed = 0
    sizes = [_size(path) for path in config.files]
    total, before = sum(sizes), 0
    for path, expected, size in zip(config.files, config.states, sizes, strict=True):
        if _lock_present(config.uploader_lock):  # the uploader began meanwhile
            waiting += 1
            emit(Done(Action("leave", run.display(path), _lock_reason(config, run))))
            continue

        def on_batch(done: int, count: int, path: Path = path, before: int = before) -> None:
            if progress is not None:
                progress(before + done, total, f"{path.name}: {count:,} lines")

        try:
            number = len(ledger.files) + 1
            outcome = recover.recovered(
                run, recovery, services, engine, path, expected, config.key, number
            )
            if outcome is None:
                outcome = FileOutcome(config.command, path, config.encoding, config.separator)
                outcome.report = services.report_path(path, number)
                with Report(outcome.report, run.display(outcome.report)) as report:
                    sync_file(
                        services.transaction,
                        tables,
                        command,
                        outcome,
                        options,
                        now=int(run.now.timestamp()),
                        report=report,
                        expected=expected,
                        max_line_bytes=config.max_line_bytes,
                        on_batch=on_batch,
                        withheld=ledger.withheld,
                        before_commit=None
                        if run.check
                        else recover.marking(run, report, config.key),
                    )
        except NotReady as exc:  # still being written: left as it is, not processed
            waiting += 1
            emit(Done(Action("leave", run.display(path), f"not ready: {exc}")))
            continue
        except NotRead as exc:  # not the file listed: nothing read, nothing recorded
            rejected.append(f"{run.display(path)}: {exc}")
            emit(Done(Action("sync", run.display(path), f"rejected: {exc}")))
            continue
        before += size
        ledger.add_outcome(outcome)
        if outcome.error:
            rejected.append(f"{run.display(path)}: {outcome.error}")
        else:
            changed |= outcome.changed > 0
            lines += outcome.lines
            failed += len(outcome.failed)
        # the outcome rides along for the text output (each file's lines under it)
        emit(Done(Action("sync", run.display(path), outcome.summary(), data=outcome)))
    applied = len(config.files) - (waiting - len(config.waiting))
    detail = f"{plural(applied, 'file')}, {plural(lines, 'line')}"
    if waiting:
        detail += f"; {plural(waiting, 'file')} not ready, left for the next run"
    if warning is not None:
        detail += " (warning: the newest file is dated in the future, see above)"
    if rejected:
        # the other files were applied: the run goes on with them, and fails at the end
        what = "it" if len(rejected) == 1 else "each"
        raise FilesRejected(
            "; ".join(rejected) + f" (rejected: nothing of {what} applied, left in place)"
        )
    if not applied:  # every file was left: nothing was done
        return "skipped", detail
    # nothing changed but lines failed: not `ok` (what the files ask is not done), nor
    # `failed` (the step did its work: the run goes on, and exits 2)
    return ("changed" if changed else "warning" if failed else "ok"), detail
