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
        self._out = AtomicFile(path)
        self._published = False

    def __enter__(self) -> Report:
        self._guarded(self._out.__enter__)
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
            self._out.write_all(text.encode("utf-8"))

        self._guarded(write)

    def publish(self) -> None:
        """The report under its name now (before the file's transaction commits, so a
        file whose changes are committed always has its report)."""
        if not self._published:

            def publish() -> None:
                self._out.sync()
                self._out.commit(replace=True)

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
            self._out.__exit__(kind, exc, tb)
