"""Control-file lines held in memory, read as the sync reads a file: the failed lines
of a saved run that `postsync retry` applies again (runner.sync.retry_input)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

from runner.sync.reader import Columns, ControlFile, Dialect


class InMemory(ControlFile):
    """`data` read as the control file `path` (named in every message), whose
    permission bits were `mode`. There is no file to see change under the sync."""

    def __init__(
        self, path: Path, dialect: Dialect, columns: Columns, data: bytes, mode: int | None
    ) -> None:
        super().__init__(path, dialect, columns)
        self.data = data
        self.file_mode = mode

    def _open(self) -> BinaryIO:
        self.mode = self.file_mode
        return io.BytesIO(self.data)

    def _read_whole(self, stream: BinaryIO) -> None:
        self.state = None

    def check_unchanged(self) -> None:
        return None
