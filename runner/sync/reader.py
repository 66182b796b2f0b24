"""The tool_sync control-file dialect: encodings, BOM, comments, header, CSV quoting.

Lines are streamed, never split, and each data line keeps its raw bytes (terminator
included) so the retry file can reproduce it byte for byte. A line longer than the
step's `max_line_bytes` rejects the file: it is never held whole in memory (a 2 GiB
file without a line end is read in bounded pieces, then refused).

The file read is the one listed, unchanged: it is checked on the open descriptor
before reading (a regular file, the same device, inode, size, mtime and ctime as when
listed) and again once read; a file that changed meanwhile is still being written
(NotReady): nothing of it is applied, it is left for the next run.
"""

from __future__ import annotations

import codecs
import csv
import errno
import hashlib
import io
import os
import re
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from runner.core.text import quoted
from runner.storage.paths import FileState, NotRegular, open_regular
from runner.sync.encodings import EncodingCheck
from runner.sync.masking import MASK, UNALIGNED

COMMENT_STARTS = ("#", "//", "(", "[", "-", " ")
# The csv module's own field limit (128 KiB) would fail a long field: a line's length is
# bounded by max_line_bytes instead, before the line is read whole.
csv.field_size_limit(sys.maxsize)
#: the longest line (its terminator left out) a step reads by default: 1 MiB
MAX_LINE_BYTES = 1 << 20
_BOM = codecs.BOM_UTF8


class ControlFileError(Exception):
    """The file is rejected as a whole (before anything is applied)."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}" if line else message)


class NotRead(ControlFileError):
    """The file is not the one listed (a symlink, a FIFO, another file): not read."""


class NotReady(NotRead):
    """The file changed since it was listed, or while it was read: still being written.
    Nothing of it is applied; it is left as it is for the next run."""


@dataclass(frozen=True)
class Dialect:
    encoding: str = "utf-8"
    separator: str = ";"
    max_line_bytes: int = MAX_LINE_BYTES


@dataclass(frozen=True)
class Columns:
    """What a command accepts: required and optional column names (lower case), names
    matching `patterns` (regular expressions, e.g. profile fields), and names `refused`
    with a reason (regular expression, why: a column another file kind takes)."""

    required: tuple[str, ...]
    optional: tuple[str, ...]
    patterns: tuple[str, ...] = ()
    refused: tuple[tuple[str, str], ...] = ()
    #: columns whose values are never shown nor kept in a record (a users file's
    #: passwords): a failed line is shown with them as ***
    secret: tuple[str, ...] = ()

    @property
    def known(self) -> tuple[str, ...]:
        return self.required + self.optional

    def check(self, name: str) -> str | None:
        """Why the column `name` is not accepted (None: it is)."""
        for pattern, why in self.refused:
            if re.fullmatch(pattern, name):
                return f"column {quoted(name)}: {why}"
        if name in self.known or any(re.fullmatch(p, name) for p in self.patterns):
            return None
        return f"unknown column {quoted(name)}"


@dataclass
class DataLine:
    number: int  # 1-based physical line number where it starts
    raw: bytes
    values: dict[str, str] | None = None
    error: str | None = None


@dataclass
class Header:
    number: int
    raw: bytes
    names: list[str]

    def masked(self, raw: bytes, dialect: Dialect, secret: Sequence[str]) -> str | None:
        """A data line as it may be shown when the header has a `secret` column: its
        fields, those columns' values as *** (None: no such column, show it as is).

        A line whose values do not line up with the header (more or fewer of them, a
        stray quote, a NUL, bytes not of the encoding) is not shown at all: a value
        shifted by one column, or a separator inside a password, would put the secret
        under another column's name."""
        hidden = {i for i, name in enumerate(self.names) if name in secret}
        if not hidden:
            return None
        try:
            text = raw.decode(dialect.encoding)
            fields = None if "\x00" in text or text.count('"') % 2 else _split(text, dialect)
        except (UnicodeDecodeError, csv.Error):
            fields = None
        if fields is None or len(fields) != len(self.names):
            return UNALIGNED
        fields = [MASK if i in hidden and v else v for i, v in enumerate(fields)]
        out = io.StringIO()
        csv.writer(out, delimiter=dialect.separator, lineterminator="").writerow(fields)
        return out.getvalue()


@dataclass
class Digest:
    """Size and sha256 of every byte read, filled as the file streams."""

    size: int = 0
    sha: hashlib._Hash = field(default_factory=hashlib.sha256)
    #: the file starts with a UTF-8 byte-order mark (kept out of the first line's raw bytes)
    bom: bool = False

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.sha.update(chunk)


def _is_comment(text: str) -> bool:
    return not text.strip() or text.startswith(COMMENT_STARTS)


def _too_long(number: int, limit: int) -> ControlFileError:
    return ControlFileError(
        number,
        f"line longer than {limit} bytes (max_line_bytes): nothing of the file applied."
        " A file without line ends, or not a control file? Fix the export; if its lines"
        " are really that long, raise max_line_bytes on the sync step",
    )


def _physical_lines(stream: BinaryIO, digest: Digest, limit: int) -> Iterator[bytes]:
    """Lines with their terminators; the UTF-8 BOM of the first (see ControlFile.bom).

    Each line is read with a bound (`limit` bytes and a CRLF): a longer one is refused
    (ControlFileError) having read no more than that of it."""
    first = True
    number = 0
    while raw := stream.readline(limit + 2 + (len(_BOM) if first else 0)):
        number += 1
        digest.feed(raw)
        body = raw[len(_BOM) :] if first and raw.startswith(_BOM) else raw
        if len(body.removesuffix(b"\n").removesuffix(b"\r")) > limit:
            raise _too_long(number, limit)
        if first:
            first = False
            if raw.startswith(_BOM):
                digest.bom = True
                raw = raw[len(_BOM) :]
        yield raw


def _records(
    stream: BinaryIO, dialect: Dialect, digest: Digest
) -> Iterator[tuple[int, bytes, str | None]]:
    """(line number, raw bytes, decoded text or None if undecodable) per physical line.

    As in tool_sync, a record is one line: a quoted field cannot hold a line break, so
    a stray quote fails its own line instead of swallowing the rest of the file.
    """
    lines = _physical_lines(stream, digest, dialect.max_line_bytes)
    for number, raw in enumerate(lines, start=1):
        try:
            yield number, raw, raw.decode(dialect.encoding)
        except UnicodeDecodeError:
            yield number, raw, None


def _split(text: str, dialect: Dialect) -> list[str]:
    body = text.rstrip("\r\n")
    if '"' not in body:  # no quoting: what the csv module would return, faster
        return [v.strip() for v in body.split(dialect.separator)] if body else []
    row = next(csv.reader([body], delimiter=dialect.separator, quotechar='"', strict=False), [])
    return [v.strip() for v in row]


def _header(number: int, raw: bytes, text: str, dialect: Dialect, columns: Columns) -> Header:
    names = [n.lower() for n in _split(text, dialect)]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ControlFileError(number, f"column {quoted(name)} appears twice in the header")
        seen.add(name)
        why = columns.check(name)
        if why is not None:
            if why.startswith("unknown"):
                if dialect.separator not in text and any(s in text for s in ";,\t:"):
                    why += f" (is the separator {dialect.separator!r} right?)"
                why += f"; known: {', '.join(columns.known)}"
            raise ControlFileError(number, why)
    for name in columns.required:
        if name not in seen:
            raise ControlFileError(number, f"missing required column {name!r}")
    return Header(number, raw, names)


class ControlFile:
    """Iterate a control file: `header` after the first data line is requested."""

    def __init__(
        self,
        path: Path,
        dialect: Dialect,
        columns: Columns,
        expected: FileState | None = None,
    ) -> None:
        self.path = path
        self.dialect = dialect
        self.columns = columns
        #: the file as it was listed: the one to read, unchanged
        self.expected = expected
        #: the file as it was once read whole (None: not read to its end)
        self.state: FileState | None = None
        self.digest = Digest()
        #: whether the lines are in the declared encoding (runner.sync.encodings)
        self.encoding_check = EncodingCheck.of(dialect.encoding)
        self.header: Header | None = None
        #: the file's modification time, read from the open file
        self.mtime_ns: int | None = None
        #: the file's permission bits: what is made of it (archive, retry file, report)
        #: is no more readable than it
        self.mode: int | None = None

    def _open(self) -> BinaryIO:
        """The listed file itself: never through a symlink put in its place, never
        blocking on a FIFO, never another file swapped in under its name."""
        try:
            fd, st = open_regular(self.path)
        except NotRegular:
            raise NotRead(0, "is no longer a regular file; not read") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise NotRead(0, "is a symbolic link now; not read") from None
            raise
        try:
            if self.expected is not None:
                if (st.st_dev, st.st_ino) != (self.expected.dev, self.expected.ino):
                    raise NotRead(0, "was replaced since it was listed; not read")
                self._unchanged(self.expected, FileState.of(st), "since it was listed")
            self.mtime_ns = st.st_mtime_ns
            self.mode = stat.S_IMODE(st.st_mode)
            return open(fd, "rb", closefd=True)
        except BaseException:
            os.close(fd)
            raise

    def lines(self, parse: Callable[[bytes], bool] | None = None) -> Iterator[DataLine]:
        """Data lines in order; ControlFileError for a bad header or a file that is not
        the one listed (nothing yielded yet). With `parse`, a line it says no to is
        yielded unparsed (no values, no error: runner.sync.diffing)."""
        with self._open() as stream:
            try:
                yield from self._lines(stream, parse)
            except ControlFileError:
                # the digest covers the whole file, rejected or not (archive, delete)
                while chunk := stream.read(1 << 20):
                    self.digest.feed(chunk)
                self._read_whole(stream)
                raise
            self._read_whole(stream)

    def _unchanged(self, before: FileState, now: FileState, when: str) -> None:
        change = before.change(now)
        if change is not None:
            raise NotReady(
                0,
                f"{change} {when}: still being written? Nothing of it applied; left"
                " for the next run",
            )

    def _read_whole(self, stream: BinaryIO) -> None:
        """Record the file as read; NotReady when it is not what was listed (or its
        bytes read are not its size: it grew or shrank while read)."""
        now = FileState.of(os.fstat(stream.fileno()))
        if self.expected is not None:
            self._unchanged(self.expected, now, "while it was read")
        if now.size != self.digest.size:
            raise NotReady(
                0,
                f"{self.digest.size:,} bytes were read of its {now.size:,}: still being"
                " written? Nothing of it applied; left for the next run",
            )
        self.state = now

    def check_unchanged(self) -> None:
        """NotReady when the file at its path is no longer exactly the file read
        (called before its changes are committed)."""
        if self.state is None:
            return
        try:
            now = FileState.of(os.lstat(self.path))
        except FileNotFoundError:
            raise NotReady(0, "was removed while it was applied; nothing of it applied") from None
        self._unchanged(self.state, now, "while it was applied")

    def _lines(self, stream: BinaryIO, parse: Callable[[bytes], bool] | None) -> Iterator[DataLine]:
        check = self.encoding_check
        for number, raw, text in _records(stream, self.dialect, self.digest):
            if number == 1 and self.digest.bom and (why := check.with_bom()) is not None:
                raise ControlFileError(number, why)
            if text is not None and _is_comment(text):
                continue  # never stored: its encoding does not matter
            check.see(number, raw)
            if text is None:
                if self.header is None:
                    self._misread(number, f"header is not valid {self.dialect.encoding}")
                yield DataLine(
                    number, raw, error=f"invalid bytes for encoding {self.dialect.encoding}"
                )
                continue
            if self.header is None:
                try:
                    self.header = _header(number, raw, text, self.dialect, self.columns)
                except ControlFileError as exc:
                    self._misread(exc.line, exc.message)
                continue
            if parse is not None and not parse(raw):
                yield DataLine(number, raw)
                continue
            yield self._data(number, raw, text, self.header.names)
        verdict = check.verdict()
        if verdict is not None:  # once every line is seen: nothing of it is committed yet
            raise ControlFileError(*verdict)

    def _misread(self, number: int, message: str) -> None:
        """Reject the file for its header, or its encoding when that is the cause."""
        verdict = self.encoding_check.verdict()
        raise ControlFileError(*(verdict or (number, message)))

    def parsed(self, line: DataLine) -> DataLine:
        """A line of the file read unparsed, parsed (its header read)."""
        assert self.header is not None
        try:
            text = line.raw.decode(self.dialect.encoding)
        except UnicodeDecodeError:
            return DataLine(line.number, line.raw, error="invalid bytes")
        return self._data(line.number, line.raw, text, self.header.names)

    def _data(self, number: int, raw: bytes, text: str, names: Sequence[str]) -> DataLine:
        if "\x00" in text:
            return DataLine(number, raw, error="line contains a NUL byte")
        if text.count('"') % 2:
            return DataLine(number, raw, error="unbalanced quote")
        try:
            values = _split(text, self.dialect)
        except csv.Error as exc:
            return DataLine(number, raw, error=f"unreadable CSV: {exc}")
        if len(values) > len(names):
            return DataLine(number, raw, error=f"{len(values)} values for {len(names)} columns")
        if len(values) < len(names):  # trailing empty values left out, as tool_sync reads
            values += [""] * (len(names) - len(values))
        return DataLine(number, raw, values=dict(zip(names, values, strict=True)))


def fingerprint(path: Path, expected: FileState | None) -> tuple[int, str]:
    """(size, sha256) of the listed file's bytes, opened as the sync opens it (NotRead
    when it is not the file listed)."""
    digest = Digest()
    with ControlFile(path, Dialect(), Columns((), ()), expected)._open() as stream:
        while chunk := stream.read(1 << 20):
            digest.feed(chunk)
    return digest.size, digest.sha.hexdigest()
