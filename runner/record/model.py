"""The record's content: the run, and what the sync did with each control file.

The sync writes these, the treatments read them; neither imports the other.
"""

from __future__ import annotations

import base64
from binascii import a2b_base64
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from runner.core.text import plural
from runner.record.journal import Span
from runner.storage.paths import FileState


def _mtime_ns(text: str | None) -> int | None:
    if not text:
        return None
    when = datetime.fromisoformat(text)
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


@dataclass(slots=True)
class FailedLine:
    number: int
    #: the line's bytes, terminator included; None when read back from a record that
    #: does not keep them (a line with a secret column: see `shown`)
    raw: bytes | None
    message: str
    #: the line as it may be shown, when it holds a secret column (a users file's
    #: password as ***): what is printed and recorded instead of its bytes, which then
    #: stay in memory only (the retry file of the run) and in the control file
    shown: str | None = None
    #: the record's own entry, when read back from a record (saved again as it was)
    saved: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    def text(self, encoding: str) -> str:
        """The line for people: decoded, or masked."""
        if self.shown is not None or self.raw is None:
            return self.shown or ""
        return self.raw.decode(encoding, "replace").rstrip("\r\n")

    def as_json(self, encoding: str) -> dict[str, Any]:
        if self.saved is not None:
            return self.saved
        kept = self.shown is None and self.raw is not None
        return {
            "number": self.number,
            "raw": base64.b64encode(self.raw).decode("ascii") if kept and self.raw else None,
            "text": self.text(encoding),
            "message": self.message,
        }


@dataclass
class FileOutcome:
    """What the sync did with one control file: the run record's per-file entry."""

    command: str
    path: Path
    encoding: str
    separator: str
    size: int = 0
    sha256: str = ""
    bom: bool = False
    header: bytes = b""
    changed: int = 0
    unchanged: int = 0
    failed: list[FailedLine] = field(default_factory=list)
    #: failed lines of which a part was applied (enrolled, but a group is missing)
    partly: int = 0
    #: mode: snapshot: the rows of the scope the file does not list that it acted on
    missing: int = 0
    #: diff: true: the lines the same as the kept snapshot's, not applied again, and how
    #: the file was read ({"mode": "diff", "since": RUN} or {"mode": "full", "why": ...})
    same: int = 0
    reconcile: dict[str, str] | None = None
    courses: dict[int, str] = field(default_factory=dict)
    #: a groups file: the groups its lines name (the feed declares them: kept empty)
    groups: list[int] = field(default_factory=list)
    report: Path | None = None
    error: str | None = None
    #: the control file's modification time when the sync opened it (ns)
    mtime_ns: int | None = None
    #: the run that applied it, when another one did (killed before it ended): this
    #: run post-treats it without applying it again
    applied_by: str | None = None
    #: the control file's permission bits (what is made of it is no more readable)
    mode: int | None = None
    #: the sync step that applied it: its command and its file pattern as the playbook
    #: writes it (`enrolments enrols*.csv`); `postsync retry` applies its failed lines
    #: through that step again
    step: str = ""
    #: a retry (`postsync retry`): the run whose failed lines of the file these are,
    #: and the sha256 of the control file they come from (their line numbers are its);
    #: `size` and `sha256` are then those of the lines applied
    retry_of: str | None = None
    feed_sha256: str | None = None
    #: where the file's archive and retry file are, as a record said (a run's own are
    #: the ledger's: runner.step.ledger)
    archive: str | None = None
    retry_file: str | None = None
    #: its lines of the run's change journal (runner.record.journal), when it changed rows
    journal: Span | None = None
    #: why its journal lines could not be written (its changes are committed)
    journal_error: str | None = None
    #: --diff: its journal lines, the first few (this run only, not in the record)
    journal_text: str | None = field(default=None, compare=False, repr=False)
    #: the control file as the sync read it whole (this run only, not in the record):
    #: archive and delete act on it only while it is unchanged
    state: FileState | None = field(default=None, compare=False, repr=False)

    @property
    def lines(self) -> int:
        return self.changed + self.unchanged + self.same + len(self.failed)

    def summary(self) -> str:
        if self.error:
            return f"rejected: {self.error}"
        already = (
            f"applied by run {self.applied_by}, which did not end; not applied again: "
            if self.applied_by
            else ""
        )
        if self.retry_of:
            already = f"failed lines of run {self.retry_of} retried: {already}"
        return already + (
            f"{plural(self.lines, 'line')}: {self.changed} changed, {self.unchanged} unchanged,"
            f" {len(self.failed)} failed"
            + (f", {self.partly} of them in part applied" if self.partly else "")
            + (f", {self.same} the same as the last snapshot" if self.same else "")
            + (f"; {self.missing} missing from the snapshot acted on" if self.missing else "")
            + (
                "; warning: " + self.reconcile["error"]
                if self.reconcile and "error" in self.reconcile
                else ""
            )
        )

    @classmethod
    def from_json(cls, entry: dict[str, Any], runs_dir: Path) -> FileOutcome:
        """Back from a saved run record (`postsync post`)."""
        lines = entry["lines"]
        return cls(
            command=entry["command"],
            path=Path(entry["path"]),
            encoding=entry["encoding"],
            separator=entry["separator"],
            size=entry["size"],
            sha256=entry["sha256"],
            bom=entry["bom"],
            header=base64.b64decode(entry["header"]),
            changed=lines["changed"],
            unchanged=lines["unchanged"],
            partly=lines.get("partly", 0),
            missing=lines.get("missing", 0),
            same=lines.get("same", 0),
            reconcile=entry.get("reconcile"),
            failed=[
                FailedLine(
                    f["number"],
                    a2b_base64(f["raw"]) if f["raw"] is not None else None,
                    f["message"],
                    f["text"] if f["raw"] is None else None,
                    saved=f,
                )
                for f in entry["failed_lines"]
            ],
            courses={c["id"]: c["key"] for c in entry["processed_courses"]},
            groups=list(entry.get("declared_groups", [])),
            report=runs_dir / entry["report"] if entry["report"] else None,
            error=entry["error"],
            mtime_ns=_mtime_ns(entry.get("mtime")),
            applied_by=entry.get("applied_by"),
            mode=entry.get("mode"),
            step=entry.get("step") or "",
            retry_of=entry.get("retry_of"),
            feed_sha256=entry.get("feed_sha256"),
            archive=entry.get("archive"),
            retry_file=entry.get("retry_file"),
            journal=Span.from_json(entry.get("journal")),
            journal_error=entry.get("journal_error"),
        )

    @property
    def feed(self) -> tuple[Path, str]:
        """The control file its lines are of: its path and sha256 (a retry's lines keep
        the line numbers of the file they come from)."""
        return self.path, self.feed_sha256 or self.sha256


@dataclass(frozen=True)
class RunHeader:
    """The run a record belongs to."""

    run_id: str
    playbook: Path
    name: str
    check: bool
    started: datetime
    area: Path
    #: AREA/.postsync/runs: the records, and each run's directory of reports
    runs_dir: Path

    @property
    def record_path(self) -> Path:
        return self.runs_dir / f"{self.run_id}.json"
