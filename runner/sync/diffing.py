"""`diff: true` on a snapshot step: apply only what changed since the last snapshot.

A step that diffs keeps the snapshot it last applied (AREA/.postsync/snapshots/, one
file a step: the feed's header and every line that did not fail), and the digest of
that kept file in postsync_snapshots, written in the same transaction as the file's
changes. The next snapshot is then read against it:

- a line the kept snapshot holds byte for byte (line terminator aside) is not applied
  again: the database got it from an earlier run (a line that failed is never kept, so
  it is applied again);
- every other line is applied as in a full reconcile;
- a line the kept snapshot held that the file no longer has is a *ghost*: unless a line
  of the file lists the same row (same scope and member, compared without case, spaces
  or leading zeros: when unsure, a row is taken as listed and kept), and, for a scope of
  the units the file names, unless the file no longer names its unit (which leaves it
  out of the scope), the row it listed is acted on as `missing` says.

A run reconciles the whole file instead when asked (--full-reconcile), every
`full_every` runs, when the step kept nothing yet, when the header or the options that
name rows changed, or when the kept file is not the one whose digest the database
holds (a run killed between its commit and the kept file's rename, a file edited or
removed): rows other writers changed since the last full reconcile are set right then.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from runner.core.text import plural
from runner.db import snapshots
from runner.storage.atomic import AtomicFile
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
#: ghost lines resolved at a time
GHOSTS = 2000


def _line(raw: bytes) -> int:
    """A line's identity (its bytes, line terminator aside), as a number: two lines the
    same, or (once in 2**64 pairs) taken as the same."""
    return hash(raw.rstrip(b"\r\n"))


def normal(value: str) -> str:
    """A key as rows are compared for a ghost: no case, no spaces around, no leading
    zeros (the database may match 'Bob ' to bob; id 007 is 7)."""
    text = value.strip().casefold()
    return str(int(text)) if text.isdigit() else text


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
        self.command = command
        self.options = options
        self.dialect = dialect
        self.preview = preview
        self.fingerprint = _fingerprint(options, dialect)
        #: the kept snapshot's lines not (yet) found in the file: None, a full reconcile
        self.old: set[int] | None = None
        self.old_sha = ""
        self.diffed = 0
        self.since = ""
        #: why the run reconciles in full ("": it diffs)
        self.why = ""
        self.same = 0
        #: the rows the file lists (normalized keys' numbers), the units it names
        self.rows: set[int] = set()
        self.units: set[str] = set()
        #: a line of the kept snapshot for each unit it names
        self.samples: dict[str, DataLine] = {}
        #: the header's columns that hold secrets (a users file's password)
        self.header: Header | None = None
        self.secret: tuple[str, ...] = ()
        self.out: AtomicFile | None = None
        self.buffer = bytearray()
        self.sha = hashlib.sha256()

    # -- before the first line ------------------------------------------------------

    def _decide(self, state: SiteState, header: Header | None) -> None:
        """Diff against the kept snapshot, or say why not."""
        snapshot = self.snapshot
        assert snapshot.kept is not None
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
            self.why = self._load(base, header)
        if not self.why:
            assert base is not None
            self.diffed, self.since = base[1] + 1, base[2]
        if snapshot.kept.is_dir() and not snapshot.kept.is_symlink():
            raise ControlFileError(
                0,
                f"{snapshot.kept} is a directory, where the step keeps the snapshot it"
                " applies: remove it",
            )
        self.header = header
        secret = self.command.columns.secret
        if header is not None and any(name in secret for name in header.names):
            self.secret = tuple(secret)
        if not self.preview:
            self._start(header)

    def _load(self, base: tuple[str, int, str], header: Header) -> str:
        """The kept snapshot's lines, read; why it cannot serve ("": it can)."""
        assert self.snapshot.kept is not None
        old: set[int] = set()
        try:
            kept = ControlFile(self.snapshot.kept, self.dialect, self.command.columns)
            for line in kept.lines():
                old.add(_line(line.raw))
                key = None if line.values is None else self._key(line.values)
                if key is not None and key[0] not in self.samples:
                    self.samples[key[0]] = line
        except (OSError, ControlFileError) as exc:
            return f"the kept snapshot cannot be read ({exc})"
        if self._digest(kept) != base[0]:
            return (
                "the kept snapshot is not the one the database last took, or the step's"
                " options that name rows (course_key, user_key...) changed"
            )
        if kept.header is None or kept.header.raw.rstrip(b"\r\n") != header.raw.rstrip(b"\r\n"):
            return "the header changed"
        self.old, self.old_sha = old, kept.digest.sha.hexdigest()
        return ""

    def _digest(self, kept: ControlFile) -> str:
        """The digest the database holds for a kept file (its bytes and fingerprint)."""
        return hashlib.sha256((self.fingerprint + kept.digest.sha.hexdigest()).encode()).hexdigest()

    def _start(self, header: Header | None) -> None:
        assert self.snapshot.kept is not None
        self.snapshot.kept.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.out = AtomicFile(self.snapshot.kept, mode=0o600).__enter__()
        if header is not None:
            self._write(header.raw)

    # -- the file's lines -----------------------------------------------------------

    def lines(self, state: SiteState, control: ControlFile) -> Iterator[DataLine]:
        """The file's lines to apply: those the kept snapshot does not hold."""
        decided = False
        for line in control.lines():
            if not decided:
                self._decide(state, control.header)
                decided = True
            if self.old is not None and line.values is not None:
                key = self._key(line.values)
                if key is not None:
                    self.rows.add(hash(key))
                    self.units.add(key[0])
                identity = _line(line.raw)
                if identity in self.old and not self._hides(line):
                    self.old.discard(identity)
                    self.same += 1
                    self.keep(line)
                    continue
            yield line
        if not decided:
            self._decide(state, control.header)

    def _key(self, values: dict[str, str]) -> tuple[str, str] | None:
        """The row a line lists, its keys normalized."""
        key = self.command.snapshot_key(values, self.options)
        return None if key is None else (normal(key[0]), normal(key[1]))

    def _hides(self, line: DataLine) -> bytes | None:
        """A line that holds a secret (a password), as it is kept: its secrets as ***
        (b"": not kept, its columns not aligned); None: it holds none. Such a line is
        applied every run: a kept secret would be one more copy of it."""
        if not self.secret or self.header is None:
            return None
        masked = self.header.masked(line.raw, self.dialect, self.secret)
        if masked is None:
            return None
        if masked == UNALIGNED:
            return b""
        kept = masked.encode(self.dialect.encoding)
        return None if kept == line.raw.rstrip(b"\r\n") else kept

    def keep(self, line: DataLine) -> None:
        """A line applied without failing (or the same as the kept one's): kept."""
        if self.out is not None:
            hidden = self._hides(line)
            if hidden != b"":
                self._write(line.raw if hidden is None else hidden)

    def _write(self, raw: bytes) -> None:
        self.buffer += raw if raw.endswith(b"\n") else raw + b"\n"
        if len(self.buffer) >= BUFFER:
            self._drain()

    def _drain(self) -> None:
        assert self.out is not None
        self.sha.update(self.buffer)
        self.out.write_all(bytes(self.buffer))
        self.buffer.clear()

    # -- after the last line --------------------------------------------------------

    def ghosts(self, state: SiteState, header: Header | None, checked: bool) -> int:
        """The rows of the kept snapshot's lines the file no longer lists, resolved
        into the file's Listed part (what `missing` may act on); a full reconcile's
        part is left whole. Returns the number of ghost lines."""
        if self.old is None:
            return 0
        listed = state.part(Listed)
        listed.only = {}
        if self.samples and not checked and header is not None:
            self.command.header(state, header, self.options)
            checked = True
        for known in self._resolved(state, list(self.samples.values())):
            listed.known.add(known[0])
        if not self.old:
            return 0
        assert self.snapshot.kept is not None
        named = self.snapshot.scope in (None, "named")
        found: list[DataLine] = []
        kept = ControlFile(self.snapshot.kept, self.dialect, self.command.columns)
        for line in kept.lines():
            if line.values is None or _line(line.raw) not in self.old:
                continue
            key = self._key(line.values)
            if key is None or hash(key) in self.rows or (named and key[0] not in self.units):
                continue  # still listed, or its unit out of the scope now
            found.append(line)
        if kept.digest.sha.hexdigest() != self.old_sha:
            raise ControlFileError(0, f"{self.snapshot.kept}: the kept snapshot changed while read")
        for unit, member, course in self._resolved(state, found):
            if member is not None:
                listed.ghost(unit, member, course)
        return len(found)

    def _resolved(
        self, state: SiteState, lines: list[DataLine]
    ) -> Iterator[tuple[int, Any, Course | None]]:
        """The rows kept lines listed, as they resolve now (a batch at a time)."""
        for start in range(0, len(lines), GHOSTS):
            batch = lines[start : start + GHOSTS]
            self.command.prepare(state, batch)
            rows = [self.command.listed(state, line, self.options) for line in batch]
            state.lookups.warnings.clear()
            state.flush()
            yield from (row for row in rows if row is not None)

    def digest(self) -> str:
        """The digest to record with the snapshot ('': a preview keeps nothing)."""
        if self.out is None:
            return ""
        if self.buffer:
            self._drain()
        return hashlib.sha256((self.fingerprint + self.sha.hexdigest()).encode()).hexdigest()

    def publish(self, outcome: FileOutcome, report: IO[str] | Report) -> None:
        """The kept snapshot in place (after the file's commit: a run killed before
        leaves the older one, whose digest the database no longer holds). One that
        cannot be written is a warning: the file is applied, the next run reconciles
        the whole file."""
        if self.out is None:
            return
        try:
            self.out.sync()
            self.out.commit(replace=True)
        except OSError as exc:
            why = f"{exc.filename or self.snapshot.kept}: {exc.strerror or exc}"
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
