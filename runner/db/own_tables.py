"""postsync's own tables in the site's database (named without Moodle's prefix, so
Moodle's schema check and backups ignore them): made together by the first real run."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, Table, inspect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateIndex, CreateTable

from runner.core.errors import StepError, database_reason
from runner.db import applied, feed_groups, snapshots

#: each table every real run needs, and why postsync keeps it
TABLES = ((applied.applied, applied.PURPOSE), (feed_groups.made, feed_groups.PURPOSE))
#: the table a snapshot step needs (made by the first real run that has one)
SNAPSHOTS = ((snapshots.taken, snapshots.PURPOSE),)


def ensure(engine: Engine, tables: Sequence[tuple[Table, str]] = TABLES) -> None:
    """Make the `tables` the site's database lacks (a real run only); a user who may
    not is told which statements its owner runs, for every missing table at once."""
    with engine.connect() as conn:
        present = inspect(conn)
        missing = [(t, why) for t, why in tables if not present.has_table(t.name)]
    if not missing:
        return
    try:
        for table, _why in missing:
            table.create(engine, checkfirst=True)
    except SQLAlchemyError as exc:
        ddl = []
        for table, _why in missing:
            ddl.append(str(CreateTable(table).compile(dialect=engine.dialect)))
            ddl += [str(CreateIndex(i).compile(dialect=engine.dialect)) for i in table.indexes]
        statements = " ".join(" ".join(s.split()) + ";" for s in ddl)
        names = " and ".join(t.name for t, _ in missing)
        why = "; ".join(f"{t.name}: {why}" for t, why in missing)
        one = len(missing) == 1
        raise StepError(
            f"cannot create postsync's {'table' if one else 'tables'} {names} in the site's"
            f" database ({database_reason(exc)}): postsync records there {why}. Create"
            f" {'it' if one else 'them'} once as the database's owner: {statements}"
        ) from None


def ensure_snapshots(engine: Engine) -> None:
    """postsync_snapshots made, or given the columns a table made before `diff` lacks."""
    ensure(engine, SNAPSHOTS)
    with engine.connect() as conn:
        statements = snapshots.upgrade(conn)
    if not statements:
        return
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    except SQLAlchemyError as exc:
        raise StepError(
            f"cannot add columns to postsync's table {snapshots.TABLE} in the site's database"
            f" ({database_reason(exc)}): postsync records there {snapshots.PURPOSE}. Run once"
            f" as the database's owner: {'; '.join(statements)};"
        ) from None
