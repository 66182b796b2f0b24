"""A control file's report: one line per data line, beside the run record.

It is written to a temporary file as the sync goes and takes its name only once the
file is done, so no report under its final name is ever partial; a write that fails
(a full disk) names the report, not the control file.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from runner.core import faults
from runner.storage.atomic import AtomicFile


class Report:
    """A text stream of report lines (`write`), published on a clean exit."""

    def __init__(self, path: Path, shown: str) -> None:
        self.path = path
        self.shown = shown
        self.out = AtomicFile(path)
        self._published = False

    def __enter__(self) -> Report:
        self._guarded(self.out.__enter__)
        return self

    def _guarded(self, call: object) -> None:
        try:
            call()  # type: ignore[operator]
        except OSError as exc:
            # the report's name in the message, whatever the operation was
            raise OSError(exc.errno, exc.strerror or str(exc), self.shown) from None

    def write(self, text: str) -> None:
        def write() -> None:
            faults.point("sync.report")
            self.out.write_all(text.encode("utf-8"))

        self._guarded(write)

    def checkpoint(self) -> int:
        """The report so far under its name, on disk, the rest still to come: its
        bytes (before a chunk of the file commits: runner.sync.chunks)."""
        written = 0

        def expose() -> None:
            nonlocal written
            written = self.out.expose()

        self._guarded(expose)
        return written

    def rewind(self, size: int) -> None:
        """Back to its first `size` bytes (what a committed chunk counted)."""
        self._guarded(lambda: self.out.rewind(size))

    def publish(self) -> None:
        """The report under its name now (before the file's transaction commits, so a
        file whose changes are committed always has its report)."""
        if not self._published:

            def publish() -> None:
                self.out.sync()
                self.out.commit(replace=True)

            self._guarded(publish)
            self._published = True

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if kind is None:
                self.publish()
        finally:
            self.out.__exit__(kind, exc, tb)
