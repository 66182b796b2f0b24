"""The files a snapshot step that diffs keeps (runner.sync.diffing): `HASH.csv`, the
feed's header and the lines applied, and `HASH.idx`, four columns of 64-bit numbers,
one entry a kept line: its digest, the digest of the row it lists and of that row's
unit, and its length. Read never through a link, never blocking on a FIFO."""

from __future__ import annotations

import hashlib
from array import array
from pathlib import Path
from typing import BinaryIO

from runner.storage import paths
from runner.storage.atomic import AtomicFile

#: the index's columns: a kept line's digest, its row's, its unit's, its length
COLUMNS = 4
#: bytes read at a time
CHUNK = 1 << 20


def digest(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def identity(raw: bytes) -> int:
    """A line's identity (its bytes, line terminator aside): two lines the same, or
    (once in 2**64 pairs) taken as the same."""
    return digest(raw.rstrip(b"\r\n"))


def columns() -> list[array[int]]:
    return [array("Q") for _ in range(COLUMNS)]


def read_index(path: Path) -> tuple[list[array[int]], str]:
    """A kept index's columns and digest (ValueError: not one)."""
    with open_regular(path) as stream:
        data = stream.read()
    width = COLUMNS * 8
    if len(data) % width:
        raise ValueError(f"{path}: {len(data)} bytes, not an index")
    count = len(data) // width
    read = columns()
    for n, column in enumerate(read):
        column.frombytes(data[n * count * 8 : (n + 1) * count * 8])
    return read, hashlib.sha256(data).hexdigest()


def read_lines(path: Path, size: int) -> tuple[str, bytes]:
    """The digest of a kept lines file and its header (ValueError: not the size its
    index says)."""
    sha, read = hashlib.sha256(), 0
    with open_regular(path) as stream:
        head = stream.readline()
        sha.update(head)
        while chunk := stream.read(CHUNK):
            sha.update(chunk)
            read += len(chunk)
    if read != size:
        raise ValueError(f"{path}: {read} bytes of lines, not the {size} its index says")
    return sha.hexdigest(), head


def open_regular(path: Path) -> BinaryIO:
    """A kept file: never through a link, never blocking on a FIFO (ValueError: not a
    regular file)."""
    try:
        fd, _ = paths.open_regular(path)
    except paths.NotRegular:
        raise ValueError(f"{path}: not a regular file") from None
    return open(fd, "rb")


def index_digest(index: list[array[int]]) -> str:
    """The digest of an index as write_index writes it."""
    sha = hashlib.sha256()
    for column in index:
        sha.update(column)
    return sha.hexdigest()


def write_index(path: Path, index: list[array[int]]) -> None:
    """A kept index put in place (after the file's commit), a column at a time."""
    with AtomicFile(path, mode=0o600) as out:
        for column in index:
            out.write_all(memoryview(column).cast("B"))
        out.sync()
        out.commit(replace=True)
