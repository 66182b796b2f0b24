"""A preview's pair states kept on disk, not in memory (runner.step.preview.Withheld).

A preview of a million enrolment lines keeps the state of a million (course, context,
user) pairs for the later batches, files and steps of the run; held as Python tuples
they took several hundred MB more than the real run's peak. They live here in a
temporary SQLite database instead: SQLite's own temporary file (an empty file name),
which it unlinks as soon as it is made, so that nothing is left behind however the
process ends, and which only this process can read. A control file's changes are a
savepoint: `rollback` (a rejected file) gives back the states before it.
"""

from __future__ import annotations

import marshal
import sqlite3
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any

#: (course id, context id, user id)
Pair = tuple[int, int, int]
#: pairs a statement looks up (3 parameters each: under SQLite's oldest 999 limit)
CHUNK = 300


class PairStore:
    """Pair -> its state (a tuple of flat tuples), in a temporary database."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute(
            "CREATE TABLE pairs (course INTEGER, context INTEGER, user INTEGER, state BLOB,"
            " PRIMARY KEY (course, context, user)) WITHOUT ROWID"
        )
        self._open = False

    def begin(self) -> None:
        if self._open:
            self.commit()
        self._db.execute("SAVEPOINT file")
        self._open = True

    def commit(self) -> None:
        if self._open:
            self._db.execute("RELEASE file")
            self._open = False

    def rollback(self) -> None:
        if self._open:
            self._db.execute("ROLLBACK TO file")
            self._db.execute("RELEASE file")
            self._open = False

    def put_all(self, states: Iterable[tuple[Pair, Any]]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO pairs VALUES (?, ?, ?, ?)",
            ((*pair, marshal.dumps(state)) for pair, state in states),
        )

    def get_all(self, pairs: Iterable[Pair]) -> dict[Pair, Any]:
        """The states of those of `pairs` the store has."""
        found: dict[Pair, Any] = {}
        wanted = sorted(set(pairs))
        for start in range(0, len(wanted), CHUNK):
            part = wanted[start : start + CHUNK]
            values = ", ".join(["(?, ?, ?)"] * len(part))
            rows = self._db.execute(
                f"WITH v (a, b, c) AS (VALUES {values}) SELECT p.course, p.context, p.user,"
                " p.state FROM v JOIN pairs p ON p.course = v.a AND p.context = v.b"
                " AND p.user = v.c",
                tuple(chain.from_iterable(part)),
            )
            for course, context, user, state in rows:
                found[(course, context, user)] = marshal.loads(state)
        return found

    def get(self, pair: Pair) -> Any | None:
        return self.get_all([pair]).get(pair)

    def __iter__(self) -> Iterator[Pair]:
        """Every pair (read as it goes)."""
        yield from self._db.execute("SELECT course, context, user FROM pairs")

    def items(self) -> Iterator[tuple[Pair, Any]]:
        for course, context, user, state in self._db.execute("SELECT * FROM pairs"):
            yield (course, context, user), marshal.loads(state)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM pairs").fetchone()[0])

    def __contains__(self, pair: object) -> bool:
        return isinstance(pair, tuple) and pair in self.get_all([pair])
