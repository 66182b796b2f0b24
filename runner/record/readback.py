"""A control file's lines read back from what keeps its bytes (the file itself, or its
archive, gzip or not), checked against the sha256 the sync read: the bytes of failed
lines that a run record keeps masked (a users file's passwords)."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Collection, Iterator
from pathlib import Path

_BOM = b"\xef\xbb\xbf"


def _physical_lines(source: Path) -> Iterator[bytes]:
    with open(source, "rb") as raw:
        packed = raw.read(2) == b"\x1f\x8b"
    with gzip.open(source, "rb") if packed else open(source, "rb") as handle:
        yield from handle  # physical lines, as the sync numbers them


def read_lines(source: Path, sha256: str, numbers: Collection[int]) -> dict[int, bytes] | None:
    """The lines `numbers` of `source` (a UTF-8 byte-order mark left out, as the sync
    keeps it), when its whole content (decompressed) has this sha256; None when it is
    gone, unreadable or not those bytes."""
    wanted = set(numbers)
    found: dict[int, bytes] = {}
    digest = hashlib.sha256()
    try:
        for number, line in enumerate(_physical_lines(source), start=1):
            digest.update(line)
            if number == 1 and line.startswith(_BOM):
                line = line[len(_BOM) :]
            if number in wanted:
                found[number] = line
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    if digest.hexdigest() != sha256 or len(found) != len(wanted):
        return None
    return found
