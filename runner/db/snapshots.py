"""postsync's own record of the snapshot feeds a site has taken, in its database.

A sync step in `mode: snapshot` declares its file the whole truth for a scope: what
the file does not list is acted on (`missing:`). The first snapshot a step applies to a
site cannot know what "missing" means there yet (rows another process made, a feed
switched from commands to snapshots), so it removes nothing unless the step says it
may (`first_snapshot: apply`): once a snapshot of the step is applied, it is recorded
here, in the same transaction as the file's changes, and later snapshots act on what
they miss. The step is named by its area, command, file pattern and scope (a changed
scope is a first snapshot again). The table is named without Moodle's prefix
(`postsync_snapshots`), made on the first real run (a preview never makes it).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from runner.db.columns import LONG_TEXT, id_col

TABLE = "postsync_snapshots"
#: why postsync keeps it, for a user who may not make it (runner.db.own_tables)
PURPOSE = (
    "which snapshot feeds a site has taken, so that the first one of a step removes"
    " nothing it was not told it may"
)

_metadata = MetaData()
taken = Table(
    TABLE,
    _metadata,
    id_col(),
    #: the area, the step's command and file pattern, and its scope
    Column("step", LONG_TEXT, nullable=False),
    Column("runid", String(64), nullable=False),
    Column("timefirst", BigInteger, nullable=False),
    Column("timelast", BigInteger, nullable=False),
    #: `diff: true`: the digest of the snapshot the step keeps, as this transaction
    #: applied it ('' none: runner.sync.diffing), and the runs diffed since the last
    #: full reconcile
    Column("base", String(64), nullable=False, server_default=""),
    Column("diffed", Integer, nullable=False, server_default="0"),
)
#: the columns a table made before diffing lacks, as added (runner.db.own_tables)
ADDED = ("base", "diffed")


def upgrade(conn: Connection) -> list[str]:
    """The ALTER statements a table made before `diff` needs (none: it has its columns)."""
    present = {c["name"] for c in inspect(conn).get_columns(TABLE)}
    statements = []
    for name in ADDED:
        if name not in present:
            column = taken.c[name]
            kind = column.type.compile(dialect=conn.dialect)
            statements.append(
                f"ALTER TABLE {TABLE} ADD COLUMN {name} {kind} NOT NULL"
                f" DEFAULT {column.server_default.arg!r}"  # type: ignore[union-attr]
            )
    return statements


def taken_before(conn: Connection, step: str) -> bool:
    """Whether a snapshot of this step was applied to the site (False when the table
    does not exist yet, or a preview's user cannot read it)."""
    try:
        if not inspect(conn).has_table(TABLE):
            return False
        with conn.begin_nested():  # a refused read must not end the file's transaction
            query = select(taken.c.id).where(taken.c.step == step)
            return conn.execute(query).first() is not None
    except SQLAlchemyError:
        return False


def base_of(conn: Connection, step: str) -> tuple[str, int, str] | None:
    """The digest of the snapshot the step keeps, the runs diffed since its last full
    reconcile and the run that applied it (None: none recorded, or unreadable)."""
    try:
        if not inspect(conn).has_table(TABLE):
            return None
        with conn.begin_nested():
            query = select(taken.c.base, taken.c.diffed, taken.c.runid).where(taken.c.step == step)
            row = conn.execute(query).first()
    except SQLAlchemyError:
        return None
    return (str(row[0]), int(row[1]), str(row[2])) if row is not None and row[0] else None


def record(
    conn: Connection, step: str, run_id: str, now: int, base: str = "", diffed: int = 0
) -> None:
    """A snapshot of the step applied (in the file's transaction), with the digest of
    the snapshot it keeps (diff) and the runs diffed since a full reconcile."""
    values = {"timelast": now, "runid": run_id, "base": base, "diffed": diffed}
    done = conn.execute(update(taken).where(taken.c.step == step).values(**values))
    if not done.rowcount:
        conn.execute(insert(taken).values(step=step, timefirst=now, **values))
