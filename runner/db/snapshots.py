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
)


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


def record(conn: Connection, step: str, run_id: str, now: int) -> None:
    """A snapshot of the step applied (in the file's transaction)."""
    done = conn.execute(
        update(taken).where(taken.c.step == step).values(timelast=now, runid=run_id)
    )
    if not done.rowcount:
        conn.execute(insert(taken).values(step=step, runid=run_id, timefirst=now, timelast=now))
