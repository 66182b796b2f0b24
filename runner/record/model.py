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
from runner.storage.paths import FileState


def _mtime_ns(text: str | None) -> int | None:
    if not text:
        return None
    when = datetime.fromisoformat(text)
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


@dataclass(slots=True)
class FailedLine:
    number: int
    raw: bytes
    message: str
    #: the record's own entry, when read back from a record (saved again as it was)
    saved: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    def as_json(self, encoding: str) -> dict[str, Any]:
        if self.saved is not None:
            return self.saved
        return {
            "number": self.number,
            "raw": base64.b64encode(self.raw).decode("ascii"),
            "text": self.raw.decode(encoding, "replace").rstrip("\r\n"),
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
    courses: dict[int, str] = field(default_factory=dict)
    #: a groups file: the groups its lines name (the feed declares them: kept empty)
    groups: list[int] = field(default_factory=list)
    report: Path | None = None
    error: str | None = None
    #: the control file's modification time when the sync opened it (ns)
    mtime_ns: int | None = None
    #: the control file as the sync read it whole (this run only, not in the record):
    #: archive and delete act on it only while it is unchanged
    state: FileState | None = field(default=None, compare=False, repr=False)

    @property
    def lines(self) -> int:
        return self.changed + self.unchanged + len(self.failed)

    def summary(self) -> str:
        if self.error:
            return f"rejected: {self.error}"
        return (
            f"{plural(self.lines, 'line')}: {self.changed} changed, {self.unchanged} unchanged,"
            f" {len(self.failed)} failed"
            + (f", {self.partly} of them in part applied" if self.partly else "")
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
            failed=[
                FailedLine(f["number"], a2b_base64(f["raw"]), f["message"], f)
                for f in entry["failed_lines"]
            ],
            courses={c["id"]: c["key"] for c in entry["processed_courses"]},
            groups=list(entry.get("declared_groups", [])),
            report=runs_dir / entry["report"] if entry["report"] else None,
            error=entry["error"],
            mtime_ns=_mtime_ns(entry.get("mtime")),
        )


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
