"""A sync step: find its control files, then apply each one in its own transaction."""

from __future__ import annotations

import codecs
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

if TYPE_CHECKING:
    from runner.step.context import RunContext, StepScope


@dataclass(frozen=True)
class SyncConfig:
    command: str
    pattern: str
    #: the rule of the pattern: which paths this step reads (runner.step.globs)
    glob: ControlGlob
    files: tuple[Path, ...]
    #: each file's (st_dev, st_ino) when it was listed: the file the sync must read
    identities: tuple[tuple[int, int], ...]
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
    #: the newest listed file's modification time (None: no file), and that file
    newest_mtime: float | None = None
    newest_file: Path | None = None


def _matches(scope: StepScope, rule: ControlGlob) -> list[tuple[Path, tuple[int, int], float]]:
    found = []
    for match in sorted(glob.glob(rule.pattern)):
        if rule.skips(os.path.basename(match)):
            continue  # retry files: never picked up by a glob, only when named or asked for
        try:
            st = os.lstat(match)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue  # directories, and symlinks: a control file is a real file
        found.append((scope.confine(match, "file"), (st.st_dev, st.st_ino), st.st_mtime))
    return found


_ASCII = b'\n\r;,\t"#azAZ09 '


def _line_oriented(encoding: str) -> bool:
    """Whether ASCII bytes (line ends, separators, quotes) mean themselves in it: the
    reader splits lines and fields on those bytes."""
    try:
        return _ASCII.decode(encoding) == _ASCII.decode("ascii")
    except UnicodeDecodeError:
        return False


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
        encoding = codecs.lookup(encoding).name
    except LookupError:
        raise PlaybookError(
            [
                scope.error(
                    f"unknown encoding {encoding!r} (e.g. utf-8, iso-8859-1, cp1252)", "encoding"
                )
            ]
        ) from None
    if not _line_oriented(encoding):
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
    found = _matches(scope, rule)
    return SyncConfig(
        command=scope.step.kind,
        pattern=pattern,
        glob=rule,
        files=tuple(path for path, _, _ in found),
        identities=tuple(identity for _, identity, _ in found),
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
        newest_mtime=max((mtime for _, _, mtime in found), default=None),
        newest_file=max(found, key=lambda f: f[2])[0] if found else None,
    )


#: how far ahead of the clock a control file's modification time may be before
#: max_age_hours warns (a file server's clock a little ahead is common)
SKEW = 60.0


def check_feed(config: SyncConfig, now: float, clock: float | None = None) -> str | None:
    """StepError when the feed did not come (min_files) or is stale (max_age_hours);
    a warning when max_age_hours cannot tell: the newest file is dated in the future
    (`clock`: the time now, when the files were listed)."""
    found = len(config.files)
    if found < config.min_files:
        raise StepError(
            f"{plural(found, 'control file')} {'matches' if found == 1 else 'match'}"
            f" {config.pattern}, fewer than min_files {config.min_files}: did the feed"
            " run? (nothing of this step applied)"
        )
    if config.max_age_hours is not None and config.newest_mtime is not None:
        age = (now - config.newest_mtime) / 3600
        if age > config.max_age_hours:
            raise StepError(
                f"the newest file matching {config.pattern} is {age:.1f} hours old, older"
                f" than max_age_hours {config.max_age_hours:g}: a stale feed? (nothing of"
                " this step applied)"
            )
        ahead = config.newest_mtime - (time.time() if clock is None else clock)
        if ahead > SKEW:
            return (
                f"modified {ahead / 3600:.1f} hours in the future: clock skew between the"
                " machine that wrote it and this one? max_age_hours cannot tell its age"
            )
    return None


def run(config: SyncConfig, run: RunContext, emit: Any, progress: Any = None) -> tuple[str, str]:
    """Apply every control file; returns (status, detail). `emit(Done)` per file;
    `progress(bytes done, bytes in all, what)` per batch of lines."""
    from runner.record.model import FileOutcome
    from runner.sync import SYNC_COMMANDS
    from runner.sync.apply import sync_file
    from runner.sync.base import SyncOptions
    from runner.sync.reader import NotRead
    from runner.sync.report import Report

    warning = check_feed(config, run.now.timestamp())
    if not config.files:
        return "skipped", f"no file matches {config.pattern}"
    if warning is not None and config.newest_file is not None:
        emit(Done(Action("warning", run.display(config.newest_file), warning)))
    _engine, tables = run.database()
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
    lines = 0
    sizes = [_size(path) for path in config.files]
    total, before = sum(sizes), 0
    for path, expected, size in zip(config.files, config.identities, sizes, strict=True):

        def on_batch(done: int, count: int, path: Path = path, before: int = before) -> None:
            if progress is not None:
                progress(before + done, total, f"{path.name}: {count:,} lines")

        outcome = FileOutcome(config.command, path, config.encoding, config.separator)
        outcome.report = run.report_path(path)
        try:
            with Report(outcome.report, run.display(outcome.report)) as report:
                sync_file(
                    run.transaction,
                    tables,
                    command,
                    outcome,
                    options,
                    now=int(run.now.timestamp()),
                    report=report,
                    expected=expected,
                    on_batch=on_batch,
                    withheld=run.withheld,
                )
        except NotRead as exc:  # not the file listed: nothing read, nothing recorded
            rejected.append(f"{run.display(path)}: {exc}")
            emit(Done(Action("sync", run.display(path), f"rejected: {exc}")))
            continue
        before += size
        run.files.append(outcome)
        if outcome.error:
            rejected.append(f"{run.display(path)}: {outcome.error}")
        else:
            run.lines_ok += outcome.changed + outcome.unchanged
            run.failed_lines += len(outcome.failed)
            changed |= outcome.changed > 0
            lines += outcome.lines
        emit(Done(Action("sync", run.display(path), outcome.summary())))
    detail = f"{plural(len(config.files), 'file')}, {plural(lines, 'line')}"
    if warning is not None:
        detail += " (warning: the newest file is dated in the future, see above)"
    if rejected:
        # the other files were applied: the run goes on with them, and fails at the end
        what = "it" if len(rejected) == 1 else "each"
        raise FilesRejected(
            "; ".join(rejected) + f" (rejected: nothing of {what} applied, left in place)"
        )
    return "changed" if changed else "ok", detail
