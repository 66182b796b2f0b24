"""What `postsync retry` applies for a control file of a saved run: its failed lines,
byte for byte as the sync read them, each at its own line number.

The run record keeps each failed line's bytes, but a line with a secret column (a users
file's password), which it keeps masked: those are read back from the control file or
its archive (checked against the sha256 the sync read), or else from the retry file of
those lines (its header and every line checked against the record). The password is
never taken from anywhere else.

The lines go at their own line numbers, the lines between them as comments, so that
every message, report and record names the control file's line numbers.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

from runner.record.model import FailedLine, FileOutcome
from runner.record.readback import read_lines
from runner.storage.paths import confinement_error
from runner.sync.memory import InMemory
from runner.sync.reader import Columns, ControlFileError, Dialect

_BOM = b"\xef\xbb\xbf"
#: a comment line in the sync's dialect: stands for a line that is not retried
_GAP = b"#\n"


class Unavailable(Exception):
    """The bytes of failed lines are nowhere as the sync read them: not retried."""


def _local(text: str | None, area: Path, roots: Sequence[Path]) -> Path | None:
    """A copy the record names (archive, retry file), when it is a local file where
    postsync may have put it: in the area or under `roots:`, out of any state
    directory (a record is input like any other: it never sends the retry elsewhere)."""
    if not text or not os.path.isabs(text):
        return None  # an object in s3://, or no copy
    if confinement_error(text, Path(os.path.realpath(text)), area, roots) is not None:
        return None
    return Path(text)


def _from_retry_file(
    source: Path, outcome: FileOutcome, secret: Sequence[str]
) -> dict[int, bytes] | None:
    """The failed lines of `outcome` from its retry file, when it holds exactly them:
    the same header, then each line as the record has it (masked, for a line it keeps
    masked)."""
    try:
        data = source.read_bytes()
    except OSError:
        return None
    dialect = Dialect(outcome.encoding, outcome.separator)
    control = InMemory(source, dialect, Columns((), (), patterns=(".*",)), data, None)
    try:
        lines = list(control.lines())
    except ControlFileError:
        return None
    header = control.header
    if header is None or header.raw != outcome.header or control.digest.bom != outcome.bom:
        return None
    if [line.raw for line in lines] != _physical(data)[1:]:
        return None  # comments or blank lines: not a retry file as postsync writes it
    if len(lines) != len(outcome.failed):
        return None
    found = {}
    for line, failed in zip(lines, outcome.failed, strict=True):
        if failed.raw is not None:
            if line.raw != failed.raw:
                return None
        elif header.masked(line.raw, dialect, secret) != failed.text(outcome.encoding):
            return None
        found[failed.number] = line.raw
    return found


def _physical(data: bytes) -> list[bytes]:
    """The physical lines, as the sync splits them (at line feeds only)."""
    return io.BytesIO(data[len(_BOM) :] if data.startswith(_BOM) else data).readlines()


def line_bytes(
    outcome: FileOutcome,
    lines: Sequence[FailedLine],
    secret: Sequence[str],
    area: Path,
    roots: Sequence[Path],
) -> list[bytes]:
    """The bytes of `lines` (failed lines of `outcome`, a saved run's file): from the
    record, and for those it keeps masked from the control file, its archive, or the
    retry file (in the area or under `roots`). Unavailable when they are nowhere to be
    found."""
    known = {line.number: line.raw for line in lines if line.raw is not None}
    masked = [line.number for line in lines if line.raw is None]
    if masked:
        path, sha256 = outcome.feed
        found = None
        for source in (path, _local(outcome.archive, area, roots)):
            if source is not None and (found := read_lines(source, sha256, masked)):
                break
        retry_file = _local(outcome.retry_file, area, roots)
        if found is None and retry_file is not None:
            found = _from_retry_file(retry_file, outcome, secret)
        if found is None:
            some = (
                "its failed line holds a password"
                if len(masked) == 1
                else f"{len(masked)} of its failed lines hold passwords"
            )
            raise Unavailable(
                f"{some}, which the run record does not keep, and neither the control file,"
                " its archive nor its retry file is there as the sync read it: nothing of it"
                " retried (put its archive back where the record says, or fix its retry"
                " file and drop it in the area)"
            )
        known.update({n: found[n] for n in masked})
    return [known[line.number] for line in lines]


def retry_input(outcome: FileOutcome, lines: Sequence[FailedLine], data: Sequence[bytes]) -> bytes:
    """The header (with the file's byte-order mark), then each failed line at its own
    line number, the lines between as comments."""
    out = [_BOM] if outcome.bom else []
    out.append(outcome.header)
    at = 1
    for line, raw in zip(lines, data, strict=True):
        if line.number - at > 1:
            out.append(_GAP * (line.number - at - 1))
        out.append(raw)
        at = line.number
    return b"".join(out)
