"""postsync's own table in the site's database: the control files a run applied.

A sync commits a marker for each file (its area, path, size, sha256, run id and line
outcomes) in the same transaction as the file's changes. So when a run is killed after
a file's commit, the next run knows that those exact bytes are applied, takes the
outcome from the marker and post-treats the file without applying it a second time (a
users file that deletes and re-creates an account must not do it twice). A run that
ends removes its markers; markers of a run that ended (its record is finished, not
interrupted) are stale and removed too.

The table is named without Moodle's prefix (`postsync_applied`): Moodle's schema check
and backups ignore it. It is made on the first real run (a preview never makes it).
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    delete,
    insert,
    inspect,
    select,
    update,
)

from runner.db.columns import LONG_TEXT, id_col

TABLE = "postsync_applied"
#: why postsync keeps it, for a user who may not make it (runner.db.own_tables)
PURPOSE = (
    "which control files a run applied, in the same transaction, so that a run killed"
    " after a commit is never applied twice"
)

_metadata = MetaData()
applied = Table(
    TABLE,
    _metadata,
    id_col(),
    Column("area", LONG_TEXT, nullable=False),
    Column("path", LONG_TEXT, nullable=False),
    Column("runid", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("timeapplied", BigInteger, nullable=False),
    #: the file's entry of the run record (JSON): its line outcomes, courses, report
    Column("outcome", LONG_TEXT, nullable=False),
)
Index("postsync_applied_runid", applied.c.runid)


def _pack(outcome: str) -> str:
    """The outcome as stored: compressed (a file of many failed lines repeats itself),
    so that it fits a server's packet limit (MariaDB's max_allowed_packet)."""
    return "zlib:" + base64.b64encode(zlib.compress(outcome.encode("utf-8"), 6)).decode("ascii")


def _unpack(stored: str) -> Any:
    if stored.startswith("zlib:"):
        stored = zlib.decompress(base64.b64decode(stored[5:])).decode("utf-8")
    return json.loads(stored)


def _key(path: Path | str) -> str:
    """A path as stored: JSON, so a name that is not UTF-8 keeps its bytes (\\udcXX)."""
    return json.dumps(str(path))


@dataclass(frozen=True)
class Marker:
    """A control file a run applied (committed) whose post-treatments may not have run."""

    id: int
    path: Path
    run_id: str
    size: int
    sha256: str
    outcome: dict[str, Any]


def exists(conn: Connection) -> bool:
    return bool(inspect(conn).has_table(TABLE))


def markers(conn: Connection, area: Path) -> list[Marker]:
    """The markers of `area` (none when the table does not exist yet)."""
    if not exists(conn):
        return []
    rows = conn.execute(
        select(applied).where(applied.c.area == _key(area)).order_by(applied.c.id)
    ).all()
    return [
        Marker(
            row.id,
            Path(json.loads(row.path)),
            row.runid,
            row.size,
            row.sha256,
            _unpack(row.outcome),
        )
        for row in rows
    ]


def mark(
    conn: Connection,
    area: Path,
    run_id: str,
    path: Path,
    *,
    size: int,
    sha256: str,
    when: int,
    outcome: str,
) -> int:
    """Record, in the file's own transaction, that `path` with these bytes is applied
    (or its lines up to a chunk: runner.sync.chunks); the marker's id."""
    result = conn.execute(
        insert(applied).values(
            area=_key(area),
            path=_key(path),
            runid=run_id,
            size=size,
            sha256=sha256,
            timeapplied=when,
            outcome=_pack(outcome),
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def remark(conn: Connection, marker: int, run_id: str, *, when: int, outcome: str) -> None:
    """A marker of a file committed in chunks, moved on (in the chunk's transaction):
    its run (the one applying it now) and its outcome so far."""
    conn.execute(
        update(applied)
        .where(applied.c.id == marker)
        .values(runid=run_id, timeapplied=when, outcome=_pack(outcome))
    )


def claim(engine: Engine, marker: int, run_id: str, outcome: str) -> None:
    """The marker becomes this run's, which post-treats its file (`outcome`: the file's
    outcome as this run has it: its report is this run's copy)."""
    with engine.begin() as conn:
        conn.execute(
            update(applied)
            .where(applied.c.id == marker)
            .values(runid=run_id, outcome=_pack(outcome))
        )


def remove(
    engine: Engine,
    area: Path,
    *,
    ids: Iterable[int] = (),
    run_id: str = "",
    keep: Iterable[int] = (),
) -> None:
    """Remove these markers, and every marker of the run `run_id` in `area` but those to
    `keep` (files the run left committed in part)."""
    ids = list(ids)
    with engine.begin() as conn:
        if not exists(conn):
            return
        if ids:
            conn.execute(delete(applied).where(applied.c.id.in_(ids)))
        if run_id:
            kept = list(keep)
            conn.execute(
                delete(applied).where(
                    applied.c.area == _key(area),
                    applied.c.runid == run_id,
                    applied.c.id.not_in(kept) if kept else applied.c.id.is_not(None),
                )
            )
