"""How a users file's batch is written: deletions, updates, then the new users with
their contexts, profile data and preferences, as Moodle's delete_user, user_update_user
and user_create_user write them (runner.sync.users.state simulates the lines)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, select

from runner.core.errors import StepError
from runner.sync.part import BatchPart, update_rows
from runner.sync.users.hashing import settle
from runner.sync.writes import chunks

if TYPE_CHECKING:
    pass

CONTEXT_SYSTEM, CONTEXT_USER = 10, 30
#: tables delete_user empties of the user's rows beside those postsync defines, when
#: the site has them (a Moodle site does; `db init`'s database has a few)
USER_ROWS = (
    "user_password_history",
    "external_tokens",
    "external_services_users",
    "user_private_key",
    "oauth2_refresh_token",
    "event_subscriptions",
)


@dataclass(eq=False)
class UserRow:
    """A user as the batch sees it: the columns a users file manages, and what changed."""

    id: int | None  # None: created by this batch, not written yet
    values: dict[str, Any]
    #: field id -> (user_info_data.id or None, data)
    profile: dict[int, tuple[int | None, str]] = field(default_factory=dict)
    new: bool = False
    deleted: bool = False
    changed: set[str] = field(default_factory=set)
    profile_changed: set[int] = field(default_factory=set)
    #: Moodle's create_password preferences, for its cron to mail a password
    create_password: bool = False
    #: the user's sessions end (suspended or deleted), as Moodle's kill_user_sessions
    end_sessions: bool = False


class UserWrites(BatchPart):
    """The writes of runner.sync.users.state.UserState (its batch: `rows`)."""

    mnethost: int
    extended: bool
    rows: list[UserRow]
    profile_fields: dict[str, tuple[int, str, str, str]]
    extra_tables: list[Table]
    _system_context: int | None

    def _write(self) -> None:
        for row in self.rows:  # the batch's passwords, hashed on the pool meanwhile
            settle(row.values)
        existing = [r for r in self.rows if not r.new]
        created = [r for r in self.rows if r.new]
        gone = [r for r in existing if r.deleted]
        # renames first move to a name of their own: the batch's renames may form a
        # chain (a->b, c->a) or a cycle (a->b, b->a), which no order of UPDATEs passes
        # through without two rows holding one username at a time
        self._free_usernames([r for r in existing if "username" in r.changed])
        # what lines did before the deletion (the deletion writes its own username)
        self._update([r for r in gone if r.changed - {"username"}], skip={"username"})
        self._delete(gone)
        self._update([r for r in existing if not r.deleted and (r.changed or r.profile_changed)])
        # a user created and deleted by the batch: made and deleted before the users
        # created after it, who may have its username (one at a time, for the same)
        for row in [r for r in created if r.deleted]:
            self._insert([row])
            self._delete([row])
        self._insert([r for r in created if not r.deleted])

    def _free_usernames(self, rows: list[UserRow]) -> None:
        """Give each renamed user a temporary username no one has (within the file's
        transaction: no other session sees it); the update then writes the final one."""
        token = secrets.token_hex(6)
        values = [(f"postsync.rename.{token}.{r.id}", r.id) for r in rows if r.id is not None]
        self.raw.run(self.raw.updates(self.t.user, ("username",), values))

    def _update(self, rows: list[UserRow], skip: set[str] | None = None) -> None:
        changes = {
            r.id: {c: r.values[c] for c in r.changed if not skip or c not in skip}
            for r in rows
            if r.id is not None
        }
        update_rows(self.raw, self.t.user, changes, self.now)
        self._profiles(rows)
        self._end_sessions([r for r in rows if r.end_sessions])

    def _insert(self, rows: list[UserRow]) -> None:
        if not rows:
            return
        columns = tuple(rows[0].values)
        # a user Moodle created meanwhile with the username stands, as Moodle made it
        key = ("mnethostid", "username")
        values = [tuple(r.values.values()) for r in rows]
        self.raw.run(self.raw.inserts(self.t.user, columns, values, key))
        keys = [(self.mnethost, r.values["username"]) for r in rows]
        ids: dict[str, int] = {}
        for part in chunks(keys, self.raw.pairs):
            found = self.raw.select_keys(self.t.user, ("id", "username"), key, part, latest=True)
            ids.update((str(name), int(uid)) for uid, name in found)
        for row in rows:
            row.id = ids[row.values["username"]]
        self._contexts([r.id for r in rows if r.id is not None])
        self._profiles(rows)
        prefs = [r.id for r in rows if r.create_password]
        if prefs:
            self.raw.run(
                self.raw.inserts(
                    self.t.user_preferences,
                    ("userid", "name", "value"),
                    [
                        (u, n, "1")
                        for u in prefs
                        for n in ("create_password", "auth_forcepasswordchange")
                    ],
                    ("userid", "name"),
                )
            )

    def system_context(self) -> int:
        if self._system_context is None:
            ctx = self.t.context.c
            found = self.raw.conn.execute(
                select(ctx.id).where(ctx.contextlevel == CONTEXT_SYSTEM)
            ).scalar()
            if found is None:
                raise StepError("the site has no system context (is it a Moodle database?)")
            self._system_context = int(found)
        return self._system_context

    def _contexts(self, ids: list[int]) -> None:
        """Each new user's context, as Moodle's context_user::instance makes it."""
        system = self.system_context()
        ctx = self.t.context
        self.raw.run(
            self.raw.inserts(
                ctx,
                ("contextlevel", "instanceid", "depth", "path", "locked"),
                [(CONTEXT_USER, uid, 2, None, 0) for uid in ids],
                ("contextlevel", "instanceid"),
            )
        )
        made: list[Any] = []
        for part in chunks([(CONTEXT_USER, uid) for uid in ids], self.raw.pairs):
            made += self.raw.select_keys(ctx, ("id",), ("contextlevel", "instanceid"), part)
        paths = [(f"/{system}/{cid}", cid) for (cid,) in made]
        self.raw.run(self.raw.updates(ctx, ("path",), paths))

    def _profiles(self, rows: list[UserRow]) -> None:
        new, changed = [], []
        formats = {
            spec[0]: 1 if spec[1] == "textarea" else 0 for spec in self.profile_fields.values()
        }
        for row in rows:
            for fid in sorted(row.profile_changed):
                rid, data = row.profile[fid]
                if rid is None:
                    new.append((row.id, fid, data, formats.get(fid, 0)))
                else:
                    changed.append((data, rid))
        d, key = self.t.user_info_data, ("userid", "fieldid")
        # a value Moodle saved meanwhile stands (the unique index), as other inserts'
        self.raw.run(self.raw.inserts(d, (*key, "data", "dataformat"), new, key))
        self.raw.run(self.raw.updates(d, ("data",), changed))

    def _end_sessions(self, rows: list[UserRow]) -> None:
        ids = [r.id for r in rows if r.id is not None]
        self.raw.run(self.raw.deletes(self.t.sessions, ids, "userid"))

    def _delete(self, rows: list[UserRow]) -> None:
        """What Moodle's delete_user does to tables: every enrolment, role, group and
        cohort membership, preference, profile field and session of the user goes;
        the user row stays, marked deleted, its username and e-mail rewritten."""
        ids = [r.id for r in rows if r.id is not None]
        if not ids:
            return
        t, raw = self.t, self.raw
        for part in chunks(ids, raw.chunk):
            groups = raw.select_in(t.groups_members, ("groupid",), "userid", part)
            self.site.touched_groups.update(int(g) for (g,) in groups)
            for table in (
                t.role_assignments,
                t.groups_members,
                t.user_enrolments,
                t.cohort_members,
                t.user_preferences,
                t.user_info_data,
                t.user_lastaccess,
                t.sessions,
                *self.extra_tables,
            ):
                raw.delete_ids(table, part, "userid")
        self.site.dirty.update(ids)
        names = self._deleted_names(rows)
        values = [
            (
                1,
                names[r.id],
                hashlib.md5(r.values["username"].encode()).hexdigest(),
                "",
                0,
                self.now,
                r.id,
            )
            for r in rows
            if r.id is not None
        ]
        columns = ("deleted", "username", "email", "idnumber", "picture", "timemodified")
        raw.run(raw.updates(t.user, columns, values))

    def _deleted_names(self, rows: list[UserRow]) -> dict[int, str]:
        """delete_user's new username: the e-mail address (or username.id@unknownemail
        .invalid) cleaned as a username, cut to fit, then .<time>; a number up while
        another user has it."""
        stamp = str(self.now)
        wanted: dict[int, str] = {}
        for r in rows:
            email = r.values.get("email") or f"{r.values['username']}.{r.id}@unknownemail.invalid"
            name = email.strip().lower()
            name = (
                name.replace(" ", "")
                if self.extended
                else "".join(c for c in name if c.isascii() and (c.isalnum() or c in "-.@_"))
            )
            wanted[r.id] = f"{name[: 100 - len(stamp) - 1]}.{stamp}"  # type: ignore[index]
        # nor a username the batch gives (written after the deletions), nor one the
        # database has: each number up is looked for again, as delete_user does (an
        # earlier deletion of the address in the same second holds .<time+1>)
        taken = {str(r.values["username"]) for r in self.rows if not r.deleted}
        names: dict[int, str] = {}
        pending = wanted
        while pending:
            found: set[str] = set()
            for part in chunks(sorted(set(pending.values())), self.raw.chunk):
                found |= {
                    str(n)
                    for (n,) in self.raw.select_in(self.t.user, ("username",), "username", part)
                }
            again: dict[int, str] = {}
            for uid, name in pending.items():
                if name in taken or name in found:
                    head, _, number = name.rpartition(".")
                    again[uid] = f"{head}.{int(number) + 1}"
                else:
                    taken.add(name)
                    names[uid] = name
            pending = again
        return names
