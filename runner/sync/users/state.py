"""The users a users file's batch names, their changes, and how they are written.

A batch is loaded with two SELECTs (the users its lines name by the step's key, and by
username), simulated line by line in memory, and written at the end of the batch: the
deletions, the updates, then the new users with their user contexts and custom
profile fields, as Moodle's user_create_user, user_update_user and delete_user write
them. A preview keeps what it would have written (runner.step.preview.UserOverlay),
so a later file of the run (an enrolments file) finds the users it would have created.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Column, MetaData, Table, inspect, select

from runner.core.text import excerpt
from runner.db.columns import filled
from runner.step.preview import USER_KEYS
from runner.sync import cascade
from runner.sync.base import LineFailed
from runner.sync.users.fields import FLAGS, NOT_CACHED, TEXT
from runner.sync.users.hashing import Pending, settle
from runner.sync.users.passwords import Passwords
from runner.sync.users.writes import USER_ROWS, UserRow, UserWrites
from runner.sync.writes import chunks, site_config

if TYPE_CHECKING:
    from runner.sync.reader import DataLine
    from runner.sync.state import SiteState

#: the user columns a users file reads and writes
COLUMNS = (
    "id",
    "deleted",
    "mnethostid",
    "username",
    "auth",
    "password",
    "lang",
    "country",
    "timezone",
    "picture",  # told to the journal (user_deleted), never written from a file
    *TEXT,
    *FLAGS,
)


class UserState(UserWrites):
    """The users file's state: the site's settings (read once), the batch's users."""

    def __init__(self, site: SiteState) -> None:
        super().__init__(site)
        conn = site.raw.conn
        self.settings = site_config(
            conn,
            self.t,
            [
                "mnet_localhost_id",
                "auth",
                "siteguest",
                "siteadmins",
                "extendedusernamechars",
                "lang",
                "country",
                "defaultcity",
                "calendartype",
                "defaultpreference_maildisplay",
                "defaultpreference_mailformat",
                "defaultpreference_maildigest",
                "defaultpreference_autosubscribe",
                "defaultpreference_trackforums",
                "version",
            ],
        )
        host = self.settings.get("mnet_localhost_id", "1")
        self.mnethost = int(host) if host.isdigit() else 1
        self.extended = self.settings.get("extendedusernamechars", "") not in ("", "0")
        self.protected = self._protected()
        #: whether lines' passwords are compared with the stored ones (update_passwords)
        self.check_passwords = False
        #: how the site's Moodle release hashes passwords
        self.passwords = Passwords.of(self.settings.get("version", ""))
        if self.withheld is not None and self.withheld.counting:
            self.passwords = replace(self.passwords, hashed=False)
        #: the auth plugins enabled on the site, as Moodle's get_enabled_auth_plugins:
        #: manual and nologin always, then config `auth` (a comma-separated list)
        self.auths = ["manual", "nologin"]
        for name in self.settings.get("auth", "").split(","):
            if name.strip() and name.strip() not in self.auths:
                self.auths.append(name.strip())
        #: column name (profile_field_x) -> (field id, datatype, param1, param2)
        self.profile_fields: dict[str, tuple[int, str, str, str]] = {}
        self._system_context: int | None = None
        present = set(inspect(conn).get_table_names())
        meta = MetaData()
        self.extra_tables = [
            Table(self.t.prefix + name, meta, Column("userid", BigInteger))
            for name in USER_ROWS
            if self.t.prefix + name in present
        ]
        self.reset()

    def _protected(self) -> dict[int, str]:
        """Users Moodle's delete_user refuses, and its user upload does not update:
        the guest, the site's administrators (id -> what they are)."""
        found = {}
        guest = self.settings.get("siteguest", "")
        if guest.isdigit():
            found[int(guest)] = "the guest user"
        for admin in self.settings.get("siteadmins", "").split(","):
            if admin.strip().isdigit():
                found[int(admin)] = "a site administrator"
        return found

    def check_auth(self, auth: str) -> None:
        """LineFailed unless the auth plugin is enabled on the site (Moodle's
        is_enabled_auth), as Moodle's user upload refuses another."""
        if auth not in self.auths:
            raise LineFailed(
                f"auth {auth} is not an enabled authentication plugin of the site (enabled:"
                f" {', '.join(self.auths)})"
            )

    def defaults(self) -> dict[str, Any]:
        """A new user's columns beside the file's, as user_create_user sets them from
        the site's settings (and tool_sync: confirmed)."""

        def setting(name: str, default: Any) -> Any:
            value = self.settings.get(name, "")
            if isinstance(default, int):
                return int(value) if value.isdigit() else default
            return value or default

        country = setting("country", "")
        return {
            "auth": "manual",
            "confirmed": 1,
            "mnethostid": self.mnethost,
            "lang": setting("lang", "en"),
            "city": setting("defaultcity", ""),
            "country": "" if country == "0" else country,
            "calendartype": setting("calendartype", "gregorian"),
            "timezone": "99",
            "maildisplay": setting("defaultpreference_maildisplay", 2),
            "mailformat": setting("defaultpreference_mailformat", 1),
            "maildigest": setting("defaultpreference_maildigest", 0),
            "autosubscribe": setting("defaultpreference_autosubscribe", 1),
            "trackforums": setting("defaultpreference_trackforums", 0),
            "timecreated": self.now,
            "timemodified": self.now,
            "descriptionformat": 1,
        }

    def load_profile_fields(self) -> dict[str, list[tuple[int, str, str, str]]]:
        """The site's custom profile fields by column name (profile_field_ + shortname,
        lower case, as the header is read)."""
        f = self.t.user_info_field.c
        found: dict[str, list[tuple[int, str, str, str]]] = {}
        rows = self.raw.conn.execute(select(f.id, f.shortname, f.datatype, f.param1, f.param2))
        for fid, shortname, datatype, param1, param2 in rows:
            spec = (int(fid), str(datatype), str(param1 or ""), str(param2 or ""))
            found.setdefault(f"profile_field_{str(shortname).lower()}", []).append(spec)
        return found

    # -- the batch -------------------------------------------------------------------------

    def reset(self) -> None:
        #: (password, stored hash) -> its check, started on the pool by check_stored
        self.checks: dict[tuple[str, str], Pending[bool]] = {}
        self.rows: list[UserRow] = []
        self.index: dict[tuple[str, str], list[UserRow]] = {}
        #: username -> id of a deleted user of this site that still has it (Moodle's
        #: delete_user rewrites it, but rows deleted otherwise may keep it): taken
        self.deleted_names: dict[str, int] = {}

    def _index(self, row: UserRow, add: bool) -> None:
        for column in USER_KEYS:
            value = str(row.values.get(column) or "")
            if not value:
                continue
            rows = self.index.setdefault((column, value), [])
            if add:
                rows.append(row)
            elif row in rows:
                rows.remove(row)

    def prepare(self, key: str, keys: Iterable[str], usernames: Iterable[str]) -> None:
        """Load the users whose `key` is one of `keys` or whose username is one of
        `usernames` (not deleted, of this site)."""
        self.site.writes.wait()
        loaded: dict[int, dict[str, Any]] = {}
        wanted = {"username": set(usernames), key: set(keys)}
        if key == "username":
            wanted = {"username": wanted["username"] | wanted[key]}
        for column, values in wanted.items():
            values.discard("")
            self._select(column, sorted(values), loaded)
        if self.withheld is not None:
            overlay = self.withheld.users
            more: set[int] = set()
            for column, values in wanted.items():
                for value in values:
                    more |= overlay.index.get((column, value), set())
            self._select("id", sorted(i for i in more if i > 0 and i not in loaded), loaded)
            for uid in sorted(more | set(loaded)):
                if uid in overlay.rows:
                    row = {**loaded.get(uid, {}), **overlay.rows[uid]}
                    if row.get("deleted"):
                        loaded.pop(uid, None)
                    else:
                        loaded[uid] = row
        self._load_profiles(loaded)

    def _select(self, column: str, values: Sequence[Any], into: dict[int, dict[str, Any]]) -> None:
        for part in chunks(values, self.raw.chunk):
            for found in self.raw.select_in(self.t.user, COLUMNS, column, part):
                row = dict(zip(COLUMNS, found, strict=True))
                if row["mnethostid"] != self.mnethost:
                    continue
                if row["deleted"]:
                    self.deleted_names[str(row["username"])] = int(row["id"])
                else:
                    into.setdefault(int(row["id"]), row)

    def _load_profiles(self, loaded: dict[int, dict[str, Any]]) -> None:
        profiles: dict[int, dict[int, tuple[int | None, str]]] = {}
        ids = sorted(i for i in loaded if i > 0)
        if self.profile_fields and ids:
            d = self.t.user_info_data
            for part in chunks(ids, self.raw.chunk):
                rows = self.raw.select_in(d, ("id", "userid", "fieldid", "data"), "userid", part)
                for rid, uid, fid, data in rows:
                    profiles.setdefault(int(uid), {})[int(fid)] = (int(rid), str(data))
        for uid, values in loaded.items():
            profile = profiles.get(uid, {})
            kept = values.pop("_profile", None)
            if kept:
                profile = {**profile, **kept}
            row = UserRow(uid, values, profile)
            self.rows.append(row)
            self._index(row, add=True)

    def check_stored(self, lines: Sequence[DataLine]) -> None:
        """Start checking, on the hashing pool, the batch's passwords against the stored
        hashes of the users their lines name by username (`update_passwords`): `matches`
        then finds each check made, or being made, instead of making it in turn."""
        for line in lines:
            password = (line.values or {}).get("password", "")
            if not password:
                continue
            values = line.values or {}
            username = values.get("username", "").strip().lower()
            key = self.site.lookups.user_key
            named = [("username", username), (key, values.get(key, "").strip())]
            for row in {id(r): r for n in named for r in self.index.get(n, ())}.values():
                stored = row.values.get("password")
                if isinstance(stored, str) and (password, stored) not in self.checks:
                    started = self.passwords.check(password, stored)
                    if started is not None:
                        self.checks[password, stored] = started

    def matches(self, password: str, stored: object) -> bool:
        """Passwords.matches, or its check started by check_stored."""
        started = self.checks.get((password, stored)) if isinstance(stored, str) else None
        return started.value() if started else self.passwords.matches(password, stored)

    def check_username(self, username: str, row: UserRow | None) -> None:
        """LineFailed when `row` (None: a new user) cannot take this username: another
        user of the site has it now, as the lines before this one left it."""
        other = self.find("username", username)
        if other is not None and other is not row:
            raise LineFailed(f"username {username} is another user's")
        if username in self.deleted_names:
            raise LineFailed(
                f"username {username} is a deleted user's (id {self.deleted_names[username]},"
                " deleted without its username being rewritten)"
            )

    def find(self, column: str, value: str) -> UserRow | None:
        """The batch's user whose `column` is `value` (LineFailed: several are)."""
        rows = [r for r in self.index.get((column, value), ()) if not r.deleted]
        if len(rows) > 1:
            raise LineFailed(f"{len(rows)} users have {column} {excerpt(str(value))}")
        return rows[0] if rows else None

    # -- simulated changes -------------------------------------------------------------

    def create(self, values: dict[str, Any]) -> UserRow:
        uid = self.withheld.new_id() if self.withheld is not None else None
        base = filled(self.t.user, **self.defaults())
        for name in (*TEXT, *FLAGS, "password", "deleted"):
            base.setdefault(name, 0 if name in FLAGS or name == "deleted" else None)
        base.setdefault("picture", 0)  # the column's default, told as such to the journal
        base.update(values)
        # every new row has the same columns, in the same order (one INSERT a batch)
        row = UserRow(uid, dict(sorted(base.items())), new=True)
        self.rows.append(row)
        self._index(row, add=True)
        given = row.values.get("password") not in (None, "", NOT_CACHED)
        self.site.journal.user("user_created", row.id, row.values, password_set=given)
        self.site.tally.add("site", 0, _key(row))
        return row

    def update(
        self, row: UserRow, changes: dict[str, Any], profile: dict[str, tuple[str, str]]
    ) -> None:
        """The row's `changes` (columns) made, and journaled with the custom profile
        fields set (`profile`: profile_field_NAME -> before, after; set by set_profile)."""
        before = {c: row.values.get(c) for c in changes} | {n: b for n, (b, _) in profile.items()}
        after = changes | {n: a for n, (_, a) in profile.items()}
        given = changes.get("password") not in (None, "", NOT_CACHED)
        self.site.journal.user(
            "user_updated", row.id, row.values, before, after, password_set=given
        )
        if changes.get("suspended") == 1 and not row.values.get("suspended"):
            self.site.tally.took("suspend_user", 0, _key(row), "the site")
        self._index(row, add=False)
        row.values.update(changes)
        row.changed |= set(changes)
        self._index(row, add=True)

    def set_profile(self, row: UserRow, fid: int, data: str) -> None:
        rid, _ = row.profile.get(fid, (None, ""))
        row.profile[fid] = (rid, data)
        row.profile_changed.add(fid)

    def delete(self, row: UserRow) -> None:
        cascade.user_deleted(self.site, row.id)
        self.site.journal.user("user_deleted", row.id, row.values)
        self.site.tally.remove("delete_user", 0, _key(row), "the site")
        self._index(row, add=False)
        row.deleted = True

    # -- writes ----------------------------------------------------------------------------

    def _withhold(self) -> None:
        assert self.withheld is not None
        for row in self.rows:
            if row.id is None:
                continue
            if row.deleted:
                self.withheld.user(row.id, {"deleted": 1})
                continue
            settle(row.values)
            written = dict(row.values) if row.new else {c: row.values[c] for c in row.changed}
            if row.profile_changed or row.new:
                written["_profile"] = {f: row.profile[f] for f in row.profile_changed}
            if written:
                self.withheld.user(row.id, written)


def _key(row: UserRow) -> tuple[str, object]:
    """A user as the guard tells them apart (max_changes): a created one has no id yet."""
    return ("user", row.id if row.id is not None and row.id > 0 else row.values.get("username"))
