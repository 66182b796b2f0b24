"""A control file's writes: each batch's net changes as statements, run in a second thread.

The flush is pipelined: batch N's writes run on the connection in a second thread
while batch N+1 is simulated. The database is never used by both threads at once:
batch N+1's lookups run before batch N's writes start (each lookup waits for the
writer first). Rows batch N inserted have no id yet in a later batch's state: that
batch deletes or updates them by their key, resolved here when it is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.pool import SingletonThreadPool

from runner.core.errors import StepError
from runner.db.raw import Raw, Statements
from runner.db.revisions import reset_course_states
from runner.db.tables import MoodleTables

#: bound parameters per IN list (SQLite allows 32766 in all, older builds 999)
CHUNK = 900


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


#: the key of a row of each table a batch writes, as `Pending` holds it (flattened)
KEY_COLUMNS = {
    "user_enrolments": ("enrolid", "userid"),
    "role_assignments": ("contextid", "userid", "roleid", "component", "itemid"),
    "groups_members": ("groupid", "userid"),
}


def _flat_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    """(contextid, userid, (roleid, component, itemid)) -> one flat tuple."""
    return key[:-1] + key[-1] if isinstance(key[-1], tuple) else key


#: the columns of the unique index of each table a batch inserts into, if it has one:
#: a row another writer (Moodle) inserted meanwhile is left as it is, not an error
UNIQUE = {
    "user_enrolments": ("enrolid", "userid"),
    "groups_members": ("userid", "groupid"),
}

#: the key of each table a batch inserts into that has no unique index on it (Moodle's
#: role_assign checks in PHP): a row another writer inserted meanwhile is left as it is
ABSENT = {
    "role_assignments": ("contextid", "userid", "roleid", "component", "itemid"),
}
#: the columns of those keys a row is looked up by (Moodle's index (userid, contextid,
#: roleid): a course's students share (roleid, contextid); see Raw._insert_select)
PROBE = {"role_assignments": ("userid", "contextid")}

#: Moodle's session timeout when its config has none (8 hours, its default)
SESSION_TIMEOUT = 8 * 3600
DIRTY_USERS = "accesslib/dirtyusers"


def mark_users_dirty(raw: Raw, t: MoodleTables, users: Sequence[int], now: int) -> None:
    """What Moodle's mark_user_dirty writes for each user: the `accesslib/dirtyusers`
    cache flag (name: the user id, value 1, expiring a session timeout from now, read
    from Moodle's config), so that a session already open reloads the user's access
    data (roles, enrolments, groups) at its next request. An existing flag is updated,
    as Moodle's set_cache_flag does.

    The flags are looked up, updated and inserted set-based, through the raw
    connection's lists (on PostgreSQL one array parameter: a list of bound parameters
    there, prepared, was planned as a scan of every flag, 0.4 to 1 s a statement)."""
    if not users:
        return
    conn, flags = raw.conn, t.cache_flags
    setting = site_config(conn, t, ["sessiontimeout"]).get("sessiontimeout")
    try:
        timeout = int(setting.strip()) if setting is not None else SESSION_TIMEOUT
    except ValueError:
        timeout = SESSION_TIMEOUT
    expiry = now + timeout if timeout > 0 else now + 24 * 3600  # as set_cache_flag
    values = {"value": "1", "expiry": expiry, "timemodified": now}
    table, q = raw.name(flags), raw.quote
    for part in chunks([str(user) for user in users], raw.chunk):
        where, params = raw.where_in(flags, "name", part)
        found = conn.exec_driver_sql(
            f"SELECT {q('id')}, {q('name')} FROM {table} WHERE {q('flagtype')} = {raw.mark}"
            f" AND {where}",
            (DIRTY_USERS, *params),
        ).all()
        if found:
            where, params = raw.where_in(flags, "id", [int(i) for i, _ in found])
            assignments = ", ".join(f"{q(c)} = {raw.mark}" for c in values)
            conn.exec_driver_sql(
                f"UPDATE {table} SET {assignments} WHERE {where}", (*values.values(), *params)
            )
        have = {str(name) for _, name in found}
        new = [(DIRTY_USERS, n, *values.values()) for n in part if n not in have]
        raw.run(raw.inserts(flags, ("flagtype", "name", *values), new))


@dataclass
class Pending:
    """Changes to one table: new rows by key, updated and deleted ids; and, for rows an
    earlier batch inserted (their id not known yet), updates and deletions by key."""

    new: dict[Any, dict[str, Any]] = field(default_factory=dict)
    updated: dict[int, dict[str, Any]] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    updated_keys: dict[Any, dict[str, Any]] = field(default_factory=dict)
    deleted_keys: set[Any] = field(default_factory=set)

    def delete(self, key: Any, row_id: int | None) -> None:
        if row_id is not None:
            self.updated.pop(row_id, None)
            self.deleted.add(row_id)
        elif key in self.new:
            del self.new[key]
        else:
            self.updated_keys.pop(key, None)
            self.deleted_keys.add(key)

    def update(self, key: Any, row_id: int | None, values: dict[str, Any]) -> None:
        if row_id is not None:
            self.updated[row_id] = values
        elif key in self.new:
            self.new[key].update(values)
        else:
            self.updated_keys[key] = values


class Writer:
    """Runs one job at a time on the connection, in a second thread or inline."""

    def __init__(self, inline: bool) -> None:
        self._pool = None if inline else ThreadPoolExecutor(1, "postsync-flush")
        self._running: Future[None] | None = None

    def submit(self, job: Callable[[], None]) -> None:
        self.wait()
        if self._pool is None:
            job()
        else:
            self._running = self._pool.submit(job)

    def wait(self) -> None:
        """Until the running job is done; raises what it raised."""
        running, self._running = self._running, None
        if running is not None:
            running.result()

    def close(self) -> None:
        """Waits for the running job, whatever it raises (the caller is failing)."""
        with suppress(Exception):  # the caller's own error is the one to report
            self.wait()
        if self._pool is not None:
            self._pool.shutdown()


def threaded_writes(conn: Connection) -> bool:
    """Whether a second thread may write on this connection (an in-memory SQLite
    database lives in one thread's connection)."""
    if conn.dialect.name == "postgresql":
        return True
    return conn.dialect.name == "sqlite" and not isinstance(conn.engine.pool, SingletonThreadPool)


@dataclass
class Changes:
    """One batch's pending changes, table by table."""

    ue: Pending = field(default_factory=Pending)
    ra: Pending = field(default_factory=Pending)
    gm: Pending = field(default_factory=Pending)
    #: (user id, course context id, course id) of users whose last enrolment in a
    #: course went: their roles below the course and their course access time go too
    left: set[tuple[int, int, int]] = field(default_factory=set)


class Writes:
    """Hands each ended batch's changes to the writer, as statements built here: the
    writer thread then only waits for the database, without Python's lock (PostgreSQL:
    one statement per table and batch; SQLite: statements of many rows each, see
    Raw.inserts, since its driver takes the lock back after every row of an
    executemany)."""

    def __init__(self, conn: Connection, raw: Raw, tables: MoodleTables) -> None:
        self.raw = raw
        self.t = tables
        self.writer = Writer(inline=not threaded_writes(conn))
        #: the previous batch's changes, written once the next batch has looked up its state
        self._ready: Changes | None = None

    def wait(self) -> None:
        """Until the writer is done with the connection."""
        self.writer.wait()

    def end_batch(self, changes: Changes) -> None:
        """The batch's changes are written by the next `write_ready`."""
        assert self._ready is None
        self._ready = changes

    def write_ready(self) -> None:
        if self._ready is not None:
            changes, self._ready = self._ready, None
            statements = self._statements(changes)
            self.writer.submit(lambda: self.raw.run(statements))

    def _resolve(self, table: Any, pending: Pending) -> None:
        """The ids of the rows an earlier batch inserted that this one updates or
        deletes (by key: each key is one row, inserted by this sync)."""
        keys = [*pending.deleted_keys, *pending.updated_keys]
        if not keys:
            return
        columns = KEY_COLUMNS[table.name.removeprefix(self.t.prefix)]
        flat = {key: _flat_key(key) for key in keys}
        ids = {}
        size = self.raw.chunk // len(columns)
        self.writer.wait()  # the rows an earlier batch inserted are written
        for part in chunks(sorted(flat.values()), size):
            for row in self.raw.select_keys(table, ("id", *columns), columns, part):
                ids[tuple(row[1:])] = row[0]
        pending.deleted.update(ids[flat[key]] for key in pending.deleted_keys)
        for key, values in pending.updated_keys.items():
            pending.updated[ids[flat[key]]] = values

    def _left(self, left: set[tuple[int, int, int]]) -> Statements:
        """What Moodle's unenrol_user removes beyond the course's own rows when a user's
        last enrolment in it goes: the user's role assignments in the contexts below
        the course (any component: role_unassign_all with subcontexts) and their
        user_lastaccess row. From the user's few role assignments (indexed by user),
        each one's context looked up by id: no scan of the context table."""
        if not left:
            return []
        t, raw = self.t, self.raw
        q, m = raw.quote, raw.mark
        ra, ctx, ula = (
            raw.name(t.role_assignments),
            raw.name(t.context),
            raw.name(t.user_lastaccess),
        )
        ordered = sorted(left)
        if raw.arrays:  # PostgreSQL: one statement each, the pairs as arrays (a plan for
            # the set: a prepared statement's generic plan may scan the context table)
            users = f"{m}::BIGINT[]"
            roles = (
                f"DELETE FROM {ra} USING unnest({users}, {users}) AS v (u, below),"
                f" {ctx} p, {ctx} c WHERE {ra}.{q('userid')} = v.u AND p.{q('id')} = v.below"
                f" AND c.{q('id')} = {ra}.{q('contextid')}"
                f" AND c.{q('path')} LIKE p.{q('path')} || '/%%'"
            )
            access = (
                f"DELETE FROM {ula} USING unnest({users}, {users}) AS v (u, course)"
                f" WHERE {ula}.{q('userid')} = v.u AND {ula}.{q('courseid')} = v.course"
            )
            return [
                (roles, ([u for u, _, _ in ordered], [c for _, c, _ in ordered])),
                (access, ([u for u, _, _ in ordered], [c for _, _, c in ordered])),
            ]
        below = f"(SELECT p.{q('path')} FROM {ctx} p WHERE p.{q('id')} = {m})"
        pattern = (
            f"CONCAT({below}, {m})"
            if raw.dialect.name in ("mysql", "mariadb")
            else f"{below} || {m}"
        )
        roles = (
            f"DELETE FROM {ra} WHERE {q('userid')} = {m} AND EXISTS (SELECT 1 FROM {ctx} c"
            f" WHERE c.{q('id')} = {ra}.{q('contextid')} AND c.{q('path')} LIKE {pattern})"
        )
        access = f"DELETE FROM {ula} WHERE {q('userid')} = {m} AND {q('courseid')} = {m}"
        return [
            (roles, [(user, context, "/%") for user, context, _ in ordered]),
            (access, [(user, course) for user, _, course in ordered]),
        ]

    def _statements(self, changes: Changes) -> Statements:
        """A batch's net changes: deletes, then updates, then inserts."""
        ue, ra, gm = changes.ue, changes.ra, changes.gm
        t, raw = self.t, self.raw
        statements: Statements = self._left(changes.left)
        for table, pending in (
            (t.groups_members, gm),
            (t.role_assignments, ra),
            (t.user_enrolments, ue),
        ):
            self._resolve(table, pending)
            for part in chunks(sorted(pending.deleted), raw.chunk):
                statements += raw.deletes(table, part)
        statements += raw.updates(
            t.user_enrolments,
            ("status", "timestart", "timeend", "timemodified"),
            [
                (v["status"], v["timestart"], v["timeend"], v["timemodified"], i)
                for i, v in ue.updated.items()
            ],
        )
        for table, pending in (
            (t.user_enrolments, ue),
            (t.role_assignments, ra),
            (t.groups_members, gm),
        ):
            if pending.new:
                columns = tuple(next(iter(pending.new.values())))
                row = itemgetter(*columns)
                # in key order: each index is updated page after page, not at random
                new = [row(pending.new[k]) for k in sorted(pending.new)]
                name = table.name.removeprefix(t.prefix)
                unique, absent = UNIQUE.get(name, ()), ABSENT.get(name, ())
                statements += raw.inserts(table, columns, new, unique, absent, PROBE.get(name, ()))
        return statements

    def touch_groups(self, groups: Sequence[int], now: int) -> None:
        """The groups whose members changed: their timemodified, once each, and their
        courses' cache revision where Moodle resets open course pages on a membership
        change (runner.db.revisions)."""
        for part in chunks(groups, self.raw.chunk):
            self.raw.update_in(self.t.groups, {"timemodified": now}, part)
        reset_course_states(self.raw.conn, self.t, groups, now, self.raw.chunk)

    def close(self) -> None:
        """Waits for the writer (a failing sync must not roll back under it)."""
        self.writer.close()


def site_config(conn: Connection, tables: MoodleTables, names: Sequence[str]) -> dict[str, str]:
    """These settings of Moodle's `config` table that the site has (name -> value)."""
    config = tables.config
    rows = conn.execute(select(config.c.name, config.c.value).where(config.c.name.in_(names)))
    return {str(name): str(value or "") for name, value in rows}


def site_admin(conn: Connection, tables: MoodleTables) -> int:
    """The site's main administrator: the first of Moodle's `siteadmins` setting."""
    value = site_config(conn, tables, ["siteadmins"]).get("siteadmins", "")
    first = value.split(",")[0].strip()
    if not first.isdigit():
        raise StepError(
            "modifierid: admin, but the site's config has no siteadmins setting; give"
            " modifierid a user id instead"
        )
    return int(first)
