"""postsync's own record of the groups and groupings a feed made, in the site's database.

clean_empty_groups deletes by default only what a feed made: the groups and groupings
a groups file or an enrolments line (`gaddcreate`, `greplacecreate`) created, and
those a groups file named (declared: the feed took them over). Moodle's own rows
cannot tell: `groups` has no column saying who made a row, an idnumber can be typed
by a teacher, and a creation time says nothing of its maker. So each control file
records them here, in its own transaction (with the rows it made: a killed run
records exactly what it committed), and the record lasts across runs, whatever the
area or the run records kept.

A row names the group (grouping) by id, with its course and creation time as they
were: a row whose id another group has since (a deleted group, its id given again
by MySQL after a restart) matches no more. The table is named without Moodle's prefix
(`postsync_groups`), made on the first real run (a preview never makes it), and can
be dropped: what it named then counts as made in Moodle (kept), never the other way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
    and_,
    delete,
    insert,
    inspect,
    literal,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from runner.core.errors import database_reason
from runner.db.columns import id_col

TABLE = "postsync_groups"
#: why postsync keeps it, for a user who may not make it (runner.db.own_tables)
PURPOSE = "which groups a feed made, the only ones clean_empty_groups deletes by default"
#: the Moodle tables whose rows it records
KINDS = ("groups", "groupings")
CHUNK = 900

_metadata = MetaData()
made = Table(
    TABLE,
    _metadata,
    id_col(),
    #: groups or groupings (Moodle's table, without its prefix)
    Column("tablename", String(20), nullable=False),
    Column("itemid", BigInteger, nullable=False),
    Column("courseid", BigInteger, nullable=False),
    #: the row's timecreated when it was recorded
    Column("timecreated", BigInteger, nullable=False),
    Column("timerecorded", BigInteger, nullable=False),
)
Index("postsync_groups_item", made.c.tablename, made.c.itemid)


def exists(conn: Connection) -> bool:
    return bool(inspect(conn).has_table(TABLE))


def unreadable(engine: Engine) -> str | None:
    """Why the table cannot be read (a preview's SELECT-only user, granted Moodle's
    tables before postsync made its own); None: it can, or it does not exist yet."""
    try:
        with engine.connect() as conn:
            if exists(conn):
                conn.execute(select(made.c.id).limit(1)).all()
    except SQLAlchemyError as exc:
        return database_reason(exc)
    return None


def chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start : start + CHUNK])


def record(conn: Connection, tables: Any, items: Iterable[tuple[str, int]], now: int) -> None:
    """Record (table name, id) rows as the feed's, as they are now (in the caller's
    transaction). A row recorded before is recorded afresh."""
    wanted: dict[str, list[int]] = {}
    for kind, item in items:
        if item > 0:
            wanted.setdefault(kind, []).append(item)
    for kind, ids in sorted(wanted.items()):
        source = getattr(tables, kind)
        for part in chunks(sorted(set(ids))):
            conn.execute(delete(made).where(made.c.tablename == kind, made.c.itemid.in_(part)))
            rows = select(
                literal(kind, String(20)),
                source.c.id,
                source.c.courseid,
                source.c.timecreated,
                literal(now, BigInteger),
            ).where(source.c.id.in_(part))
            conn.execute(
                insert(made).from_select(
                    ["tablename", "itemid", "courseid", "timecreated", "timerecorded"], rows
                )
            )


def facts(
    conn: Connection, tables: Any, kind: str, ids: Sequence[int], readable: bool = True
) -> dict[int, tuple[int, bool]]:
    """Row id -> (its timecreated, whether the feed made it) for these rows of `kind`
    (groups, groupings). None is the feed's when the table does not exist yet (or,
    not `readable`, cannot be read)."""
    source = getattr(tables, kind)
    recorded = readable and exists(conn)
    out: dict[int, tuple[int, bool]] = {}
    for part in chunks(sorted(set(ids))):
        if recorded:
            match = and_(
                made.c.tablename == kind,
                made.c.itemid == source.c.id,
                made.c.courseid == source.c.courseid,
                made.c.timecreated == source.c.timecreated,
            )
            query = select(
                source.c.id, source.c.timecreated, select(made.c.id).where(match).exists()
            )
        else:
            query = select(source.c.id, source.c.timecreated, literal(False))
        for item, created, feed in conn.execute(query.where(source.c.id.in_(part))):
            out[int(item)] = (int(created or 0), bool(feed))
    return out


def forget(conn: Connection, kind: str, ids: Sequence[int]) -> None:
    """The records of rows deleted (in the caller's transaction)."""
    if not ids or not exists(conn):
        return
    for part in chunks(list(ids)):
        conn.execute(delete(made).where(made.c.tablename == kind, made.c.itemid.in_(part)))
