"""`diff: true` on a snapshot step: apply only what changed since the last snapshot.

A step that diffs keeps the snapshot it last applied (AREA/.postsync/snapshots/: the
feed's header and every line that did not fail, `HASH.csv`, and beside it `HASH.idx`,
each kept line's digest, the digests of the row it lists and of that row's unit
(course, group, cohort), and its length), and the digest of both files in
postsync_snapshots, written in the same transaction as the file's changes. The next
snapshot is then read against it:

- a line the kept snapshot holds byte for byte (line terminator aside) is not parsed
  nor applied again: the database got it from an earlier run (a line that failed is
  never kept, so it is applied again; a line holding a secret, a users file's
  password, is kept with its secrets as *** and applied every run);
- every other line is applied as in a full reconcile;
- a line the kept snapshot held that the file no longer has is a *ghost*: unless a line
  of the file lists the same row (same unit and member, compared without case, spaces
  or leading zeros: when unsure, a row is taken as listed and kept), and, for a scope of
  the units the file names, unless the file no longer names its unit (which leaves it
  out of the scope), the row it listed is acted on as `missing` says. A unit of the
  scope the kept snapshot did not name is reconciled whole (runner.sync.snapshot.Listed).

A run reconciles the whole file instead when asked (--full-reconcile), every
`full_every` runs, when the step kept nothing yet, when the header or the options that
name rows changed, or when the kept files are not those whose digest the database
holds (a run killed between its commit and their rename, a file edited or removed):
rows other writers changed since the last full reconcile are set right then.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from runner.core.text import plural
from runner.db import snapshots
from runner.storage.atomic import AtomicFile
from runner.sync import kept
from runner.sync.masking import UNALIGNED
from runner.sync.reader import ControlFile, ControlFileError, DataLine, Dialect, Header
from runner.sync.snapshot import Listed

if TYPE_CHECKING:
    from runner.record.model import FileOutcome
    from runner.sync.base import Course, Snapshot, SyncOptions
    from runner.sync.command import SnapshotCommand
    from runner.sync.report import Report
    from runner.sync.state import SiteState

#: bytes of the kept snapshot written at a time
BUFFER = 1 << 20
#: kept lines resolved at a time
GHOSTS = 2000


def normal(value: str) -> str:
    """A key as rows are compared for a ghost: no case, no spaces around, no leading
    zeros (the database may match 'Bob ' to bob; id 007 is 7)."""
    text = value.strip().casefold()
    return (text.lstrip("0") or "0") if text.isascii() and text.isdigit() else text


def _fingerprint(options: SyncOptions, dialect: Dialect) -> str:
    """What names rows besides the lines: another value is another kept snapshot."""
    names = (options.course_key, options.user_key, options.group_key, options.cohort_key)
    return json.dumps(
        [*names, options.membership_component, dialect.encoding, dialect.separator],
        sort_keys=True,
    )


class Diff:
    """One snapshot file read against the step's kept one (`diff: true`)."""

    def __init__(
        self,
        snapshot: Snapshot,
        command: SnapshotCommand,
        options: SyncOptions,
        dialect: Dialect,
        *,
        preview: bool,
    ) -> None:
        assert snapshot.kept is not None
        self.snapshot = snapshot
        self.csv, self.idx = snapshot.kept, snapshot.kept.with_suffix(".idx")
        self.command = command
        self.options = options
        self.dialect = dialect
        self.preview = preview
        self.fingerprint = _fingerprint(options, dialect)
        #: the kept snapshot's line digests not (yet) found in the file: None, a full
        #: reconcile; its index, the digest of its lines file
        self.old: set[int] | None = None
        self.old_index = kept.columns()
        self.old_sha = ""
        self.diffed = 0
        self.since = ""
        #: why the run reconciles in full ("": it diffs)
        self.why = ""
        self.decided = False
        self.same = 0
        #: the rows and units the file's applied lines list (a diff's: few)
        self.rows: set[int] = set()
        self.units: set[int] = set()
        #: each unit's text as a line names it: its normal form (and a separator), digest
        self.unit_digests: dict[str, tuple[bytes, int]] = {}
        self.header: Header | None = None
        #: the header's columns that hold secrets (a users file's password)
        self.secret: tuple[str, ...] = ()
        self.out: AtomicFile | None = None
        self.index = kept.columns()
        self.buffer = bytearray()
        self.sha = hashlib.sha256()

    # -- before the first line ------------------------------------------------------

    def _decide(self, state: SiteState, header: Header | None) -> None:
        """Diff against the kept snapshot, or say why not."""
        self.decided = True
        snapshot = self.snapshot
        base = snapshots.base_of(state.raw.conn, snapshot.step)
        if snapshot.full:
            self.why = "asked (--full-reconcile)"
        elif base is None:
            self.why = "no snapshot kept yet"
        elif base[1] + 1 >= snapshot.full_every:
            self.why = f"every {plural(snapshot.full_every, 'run')} (full_every)"
        elif header is None:
            self.why = "the file has no header"
        else:
            self.why = self._load(base[0], header)
        if not self.why:
            assert base is not None
            self.diffed, self.since = base[1] + 1, base[2]
        if self.csv.is_dir() and not self.csv.is_symlink():
            raise ControlFileError(
                0,
                f"{self.csv} is a directory, where the step keeps the snapshot it applies:"
                " remove it",
            )
        self.header = header
        secret = self.command.columns.secret
        if header is not None and any(name in secret for name in header.names):
            self.secret = tuple(secret)
        if not self.preview:
            self._start(header)

    def _load(self, base: str, header: Header) -> str:
        """The kept snapshot's index, read and checked; why it cannot serve ("": it
        can)."""
        try:
            index, idx_sha = kept.read_index(self.idx)
            csv_sha, head = kept.read_lines(self.csv, sum(index[3]))
        except (OSError, ValueError) as exc:
            return f"the kept snapshot cannot be read ({exc})"
        if self._digest(csv_sha, idx_sha) != base:
            return (
                "the kept snapshot is not the one the database last took, or the step's"
                " options that name rows (course_key, user_key...) changed"
            )
        if head.rstrip(b"\r\n") != header.raw.rstrip(b"\r\n"):
            return "the header changed"
        self.old, self.old_index, self.old_sha = set(index[0]), index, csv_sha
        return ""

    def _digest(self, csv_sha: str, idx_sha: str) -> str:
        """The digest the database holds for the kept files and the options."""
        return hashlib.sha256(f"{self.fingerprint} {csv_sha} {idx_sha}".encode()).hexdigest()

    def _start(self, header: Header | None) -> None:
        self.csv.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.out = AtomicFile(self.csv, mode=0o600).__enter__()
        if header is not None:
            self._write(header.raw)

    # -- the file's lines -----------------------------------------------------------

    def lines(self, state: SiteState, control: ControlFile) -> Iterator[DataLine]:
        """The file's lines to apply: those the kept snapshot does not hold (those it
        holds are not even parsed)."""

        def fresh(raw: bytes) -> bool:
            if not self.decided:
                self._decide(state, control.header)
            old = self.old
            if old is None:
                return True
            digest = kept.identity(raw)
            if digest in old and self._hides(raw) is None:
                old.discard(digest)
                self.same += 1
                return False
            return True

        for line in control.lines(fresh):
            if line.values is None and line.error is None:
                continue  # the same as a kept line
            if self.old is not None and line.values is not None:
                row, unit = self._keys(line.values)
                self.rows.add(row)
                self.units.add(unit)
            yield line
        if not self.decided:
            self._decide(state, control.header)

    def _keys(self, values: dict[str, str]) -> tuple[int, int]:
        """The digests of the row a line lists and of its unit (0, 0: none)."""
        key = self.command.snapshot_key(values, self.options)
        if key is None:
            return 0, 0
        known = self.unit_digests.get(key[0])
        if known is None:  # a few units, many lines each
            unit = normal(key[0])
            known = self.unit_digests[key[0]] = (unit + "\0").encode(), kept.digest(unit.encode())
        return kept.digest(known[0] + normal(key[1]).encode()), known[1]

    def _hides(self, raw: bytes) -> bytes | None:
        """A line that holds a secret (a password), as it is kept: its secrets as ***
        (b"": not kept, its columns not aligned); None: it holds none. Such a line is
        applied every run: a kept secret would be one more copy of it."""
        if not self.secret or self.header is None:
            return None
        masked = self.header.masked(raw, self.dialect, self.secret)
        if masked is None:
            return None
        if masked == UNALIGNED:
            return b""
        kept = masked.encode(self.dialect.encoding)
        return None if kept == raw.rstrip(b"\r\n") else kept

    def keep(self, line: DataLine) -> None:
        """A line applied without failing: kept, with its digests."""
        if self.out is None or line.values is None:
            return
        hidden = self._hides(line.raw)
        if hidden == b"":
            return
        raw = line.raw if hidden is None else hidden
        row, unit = self._keys(line.values)
        self._record(kept.identity(raw), row, unit, raw)

    def _record(self, digest: int, row: int, unit: int, raw: bytes) -> None:
        digests, rows, units, lengths = self.index
        digests.append(digest)
        rows.append(row)
        units.append(unit)
        lengths.append(self._write(raw))

    def _write(self, raw: bytes) -> int:
        """A line of the kept snapshot, ended by a newline; its length as written."""
        start = len(self.buffer)
        self.buffer += raw
        if not raw.endswith(b"\n"):
            self.buffer += b"\n"
        written = len(self.buffer) - start
        if len(self.buffer) >= BUFFER:
            self._drain()
        return written

    def _drain(self) -> None:
        assert self.out is not None
        self.sha.update(self.buffer)
        self.out.write_all(bytes(self.buffer))
        self.buffer.clear()

    # -- after the last line --------------------------------------------------------

    def ghosts(self, state: SiteState, header: Header | None, checked: bool) -> int:
        """The kept lines the file still has, kept again; the rows of those it no
        longer lists, resolved into the file's Listed part (what `missing` may act on);
        a full reconcile's part is left whole. Returns the number of ghost lines."""
        old = self.old
        if old is None:
            return 0
        digests, rows, units, lengths = self.old_index
        gone_rows = {r for d, r in zip(digests, rows, strict=True) if d in old and r}
        gone_units = {u for d, u in zip(digests, units, strict=True) if d in old and u}
        listed_rows = gone_rows & self.rows
        named_units = gone_units & self.units
        removed: list[tuple[int, bytes]] = []
        samples: dict[int, bytes] = {}
        sha = hashlib.sha256()
        with kept.open_regular(self.csv) as lines:
            sha.update(lines.readline())
            for i, length in enumerate(lengths):
                raw = lines.read(length)
                sha.update(raw)
                samples.setdefault(units[i], raw)
                if digests[i] in old:
                    if rows[i]:
                        removed.append((i, raw))
                    continue
                if self.out is not None:
                    self._record(digests[i], rows[i], units[i], raw)
                if rows[i] in gone_rows:
                    listed_rows.add(rows[i])
                if units[i] in gone_units:
                    named_units.add(units[i])
            sha.update(lines.read())
        if sha.hexdigest() != self.old_sha:
            raise ControlFileError(0, f"{self.csv}: the kept snapshot changed while read")
        named = self.snapshot.scope in (None, "named")
        found = [
            raw
            for i, raw in removed
            if rows[i] not in listed_rows and (not named or units[i] in named_units)
        ]
        listed = state.part(Listed)
        listed.only = {}
        parser = ControlFile(self.csv, self.dialect, self.command.columns)
        parser.header = header
        if (found or samples) and not checked and header is not None:
            self.command.header(state, header, self.options)
        units_named = [parser.parsed(DataLine(0, raw)) for raw in samples.values()]
        for known in self._resolved(state, units_named):
            listed.known.add(known[0])
        ghosts = [parser.parsed(DataLine(0, raw)) for raw in found]
        for unit, member, course in self._resolved(state, ghosts):
            if member is not None:
                listed.ghost(unit, member, course)
        return len(found)

    def _resolved(
        self, state: SiteState, lines: list[DataLine]
    ) -> Iterator[tuple[int, Any, Course | None]]:
        """The rows kept lines listed, as they resolve now (a batch at a time)."""
        lines = [line for line in lines if line.values is not None]
        for start in range(0, len(lines), GHOSTS):
            batch = lines[start : start + GHOSTS]
            self.command.prepare(state, batch)
            rows = [self.command.listed(state, line, self.options) for line in batch]
            state.lookups.warnings.clear()
            state.flush()
            yield from (row for row in rows if row is not None)

    def digest(self) -> str:
        """The digest to record with the snapshot ('': a preview keeps nothing); the
        kept index written beside the lines (both put in place by publish())."""
        if self.out is None:
            return ""
        if self.buffer:
            self._drain()
        return self._digest(self.sha.hexdigest(), kept.index_digest(self.index))

    def publish(self, outcome: FileOutcome, report: IO[str] | Report) -> None:
        """The kept snapshot in place (after the file's commit: a run killed before
        leaves the older one, whose digest the database no longer holds). One that
        cannot be written is a warning: the file is applied, the next run reconciles
        the whole file."""
        if self.out is None:
            return
        try:
            kept.write_index(self.idx, self.index)
            self.out.sync()
            self.out.commit(replace=True)
        except OSError as exc:
            why = f"{exc.filename or self.csv}: {exc.strerror or exc}"
            note = f"the kept snapshot could not be written ({why}): the next run reconciles"
            report.write(f"warning: {note} the whole file\n")
            if outcome.reconcile is not None:
                outcome.reconcile["error"] = note + " the whole file"
        finally:
            self.discard()

    def discard(self) -> None:
        """Nothing kept (the file rejected, rolled back, a preview)."""
        if self.out is not None:
            self.out.__exit__(None, None, None)
            self.out = None

    def note(self, outcome: FileOutcome) -> str:
        """What the report says of how the file was read."""
        outcome.same = self.same
        if self.old is None:
            outcome.reconcile = {"mode": "full", "why": self.why}
            return f"full reconcile: {self.why}"
        outcome.reconcile = {"mode": "diff", "since": self.since}
        return (
            f"diff against the snapshot run {self.since} applied: {plural(self.same, 'line')}"
            " the same, not applied again"
        )
