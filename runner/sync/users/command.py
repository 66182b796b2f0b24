"""users: tool_sync's user file (userimport.csv)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from runner.core.text import excerpt, quoted
from runner.sync.base import CHANGED, FAILED, UNCHANGED, LineFailed, LineResult, SyncOptions
from runner.sync.reader import Columns, ControlFileError, DataLine, Header
from runner.sync.snapshot import Listed
from runner.sync.users.fields import (
    LOCAL_PASSWORDS,
    NOT_CACHED,
    OPTIONAL,
    PROFILE,
    REQUIRED,
    UserLine,
    parse,
)
from runner.sync.users.hashing import Pending
from runner.sync.users.snapshot import unlisted
from runner.sync.users.state import UserState
from runner.sync.users.writes import UserRow

if TYPE_CHECKING:
    from runner.sync.state import SiteState

REFUSED = (
    (
        r"(course|group|role|enrol|start|end|wwwroot)[0-9]+",
        "a users file does not enrol: put the enrolments in an enrolments file, which"
        " the same run applies after the users file (see the nightly example)",
    ),
    (r"cohort|cohortid", "a users file does not fill cohorts: use a cohorts file"),
    (
        r"oldusername",
        "renames are not made by oldusername: with user_key idnumber (or email), a"
        " line whose username changed renames the user",
    ),
    (
        r"icq|skype|yahoo|aim|msn|url|htmleditor|ajax",
        "Moodle's user table has no such column any more",
    ),
)


class Users:
    """Create, update, suspend and delete users (userimport.csv).

    Columns (header line, any order; `;` by default):
      username, firstname, lastname (required): a new user's username (lower-cased, as
        Moodle keeps it) and names.
      idnumber, email, auth (manual default), password, institution, department, city,
      country (two letters), lang, timezone, phone1, phone2, address, description,
      middlename, alternatename, firstnamephonetic, lastnamephonetic, mailformat,
      maildisplay, maildigest, autosubscribe, trackforums: Moodle's user fields.
      suspended: 1 suspends the user (their sessions end), 0 lifts it.
      deleted: 1 deletes the user as Moodle does (below).
      profile_field_<shortname>: a custom profile field of the site (a column naming no
        field of the site rejects the file).

    A line names its user by the step's `user_key` (idnumber default, username or
    email); a line with no value in that column names its user by username, as
    tool_sync does. A user the key finds is updated with the line's values (an empty
    text value empties the field; an empty number leaves it); otherwise the user is
    created, as Moodle's user_create_user does (the site's defaults for language,
    country, city, e-mail settings; confirmed; a user context). A user found by
    username whose key is still empty is given the line's key. An existing user's
    e-mail address changes only with `update_emails: true` (as tool_sync's
    protectemails), their password only with `update_passwords: true`. A line
    whose username differs from its user's renames the user; lines apply in order,
    so a chain (a to b, then c to a) or a swap through a third name applies, and a
    line fails when another user has its username at that point of the file.
    The site's administrators and the guest (Moodle's siteadmins, siteguest) are
    not changed, as Moodle's user upload: such a line fails, unless the step sets
    `allow_admin_updates: true`. An auth must be enabled on the site (manual,
    nologin, and Moodle's `auth` setting), an e-mail address one Moodle's
    validate_email takes (no < or >).

    Passwords are hashed as the site's Moodle release hashes them (its config
    `version`): SHA-512 crypt from Moodle 4.3, bcrypt before. A stored hash that
    logs the line's password in on the site (SHA-512 crypt, bcrypt; before 4.3 an
    unsalted md5 too) is left as it is: the password is unchanged. An auth plugin
    that keeps no password in Moodle (ldap, cas...) takes none. A new user without a
    password gets none; with `create_passwords: true`, Moodle's cron makes one and
    mails it (the create_password preference), as tool_sync's option.

    Deleting does what Moodle's delete_user does to tables: the user's enrolments, role
    assignments, group and cohort memberships, preferences, profile data and sessions
    go; the user row stays, marked deleted, its username, e-mail and idnumber
    rewritten as Moodle rewrites them. The guest and the site's administrators are
    never deleted. Enrolling columns (course1, role1...) are refused: enrolments go in
    an enrolments file.

    Example line: `jdoe;John;Doe;U0001;jdoe@example.org;FR;fr`
    (header `username;firstname;lastname;idnumber;email;country;lang`)

    With `mode: snapshot` and `scope: {auth: NAME}` the file is the whole truth for
    the users of that authentication plugin: a user of it whose username no line
    names is suspended (`missing: suspend`) or kept; never the guest or an
    administrator (see "Snapshot feeds").
    """

    columns = Columns(
        REQUIRED,
        OPTIONAL,
        patterns=(PROFILE + r"[a-z0-9_]+",),
        refused=REFUSED,
        secret=("password",),
    )

    def header(self, state: SiteState, header: Header, options: SyncOptions) -> None:
        users = state.part(UserState)
        users.check_passwords = options.update_passwords
        fields = users.load_profile_fields()
        for name in header.names:
            if not name.startswith(PROFILE):
                continue
            specs = fields.get(name, [])
            if len(specs) != 1:
                known = ", ".join(sorted(f[len(PROFILE) :] for f in fields)) or "none"
                why = (
                    f"the site has no custom profile field {quoted(name[len(PROFILE) :])} (its"
                    f" fields: {known})"
                    if not specs
                    else f"{len(specs)} custom profile fields have this shortname"
                )
                raise ControlFileError(header.number, f"column {quoted(name)}: {why}")
            users.profile_fields[name] = specs[0]

    def prepare(self, state: SiteState, lines: Sequence[DataLine]) -> None:
        key = state.lookups.user_key
        keys, names = set(), set()
        for line in lines:
            if line.values is None:
                continue
            username = line.values.get("username", "").strip().lower()
            names.add(username)
            keys.add(username if key == "username" else line.values.get(key, "").strip())
        users = state.part(UserState)
        users.prepare(key, keys, names)
        if users.check_passwords:
            users.check_stored(lines)

    def apply(self, state: SiteState, line: DataLine, options: SyncOptions) -> LineResult:
        if line.values is None:
            return LineResult(line.number, FAILED, "", line.error or "unreadable")
        users = state.part(UserState)
        username = line.values.get("username", "").strip().lower()
        summary = f"user {excerpt(username) or '-'}"
        listed = state.part(Listed).usernames if options.snapshot is not None else None
        if listed is not None:
            listed.add(username)  # named, whatever the line's fate
        try:
            parsed = parse(line.values, users.extended, users.profile_fields)
            key = options.user_key
            value = parsed.username if key == "username" else str(parsed.fields.get(key, ""))
            by = key if value else "username"
            row = users.find(by, value or parsed.username)
            if listed is not None and row is not None:
                listed.add(str(row.values["username"]))
            if parsed.deleted:
                return self._delete(users, row, line.number, summary, by, value or username)
            if row is None and by != "username":
                row = users.find("username", parsed.username)
                if row is not None and row.values.get(key):
                    raise LineFailed(
                        f"no user has {key} {excerpt(value)}, and username"
                        f" {excerpt(parsed.username)} is"
                        f" another user's ({key} {excerpt(str(row.values[key]))})"
                    )
            if row is None:
                users.check_username(parsed.username, None)
                return self._create(users, parsed, line.number, summary, options)
            return self._update(users, row, parsed, line.number, summary, options)
        except LineFailed as exc:
            return LineResult(line.number, FAILED, summary, str(exc))

    def missing(self, state: SiteState, options: SyncOptions) -> Iterator[list[LineResult]]:
        return unlisted(state, options)

    def snapshot_key(self, values: dict[str, str], options: SyncOptions) -> tuple[str, str]:
        return "", values.get("username", "").strip().lower()

    def listed(
        self, state: SiteState, line: DataLine, options: SyncOptions
    ) -> tuple[int, str, None] | None:
        assert line.values is not None
        name = line.values.get("username", "").strip().lower()
        return (0, name, None) if name else None

    @staticmethod
    def _password(users: UserState, parsed: UserLine, auth: str) -> Pending[str] | None:
        """The password column to write (None: none given), hashed as the site's Moodle
        release hashes it (being made: the batch's writes wait for it)."""
        if parsed.password is None:
            return None
        if auth not in LOCAL_PASSWORDS:
            raise LineFailed(
                f"auth {auth} keeps no password in Moodle: leave the password empty for its users"
            )
        return users.passwords.hash(parsed.password)

    def _create(
        self, users: UserState, parsed: UserLine, number: int, summary: str, options: SyncOptions
    ) -> LineResult:
        values: dict[str, Any] = {**parsed.fields, "username": parsed.username}
        auth = str(values.get("auth", "manual"))
        users.check_auth(auth)
        password = self._password(users, parsed, auth)
        values["password"] = (
            password if password is not None else "" if auth in LOCAL_PASSWORDS else NOT_CACHED
        )
        row = users.create(values)
        row.create_password = (
            password is None and auth in LOCAL_PASSWORDS and options.create_passwords
        )
        for fid, data in parsed.profile.items():
            if data:
                users.set_profile(row, fid, data)
        return LineResult(number, CHANGED, summary, "created")

    def _update(
        self,
        users: UserState,
        row: UserRow,
        parsed: UserLine,
        number: int,
        summary: str,
        options: SyncOptions,
    ) -> LineResult:
        wanted: dict[str, Any] = {**parsed.fields, "username": parsed.username}
        notes = []
        changes = {c: v for c, v in wanted.items() if row.values.get(c) != v}
        if "email" in changes and row.values.get("email") and not options.update_emails:
            del changes["email"]
            notes.append(f"kept e-mail {excerpt(str(row.values['email']))} (update_emails is off)")
        if "username" in changes:
            users.check_username(parsed.username, row)
        auth = str(wanted.get("auth", row.values.get("auth", "manual")))
        if "auth" in changes:
            users.check_auth(auth)
        new_password = (
            parsed.password is not None
            and options.update_passwords
            and not users.matches(parsed.password, row.values.get("password"))
        )
        for fid, data in parsed.profile.items():
            held = row.profile.get(fid)
            if (held[1] if held else "") != data:
                changes[f"profile field {fid}"] = data
        what = users.protected.get(row.id) if row.id is not None else None
        if what and (changes or new_password) and not options.allow_admin_updates:
            raise LineFailed(
                f"{parsed.username} is {what}: a users file does not change it, as Moodle's"
                " user upload does not (allow_admin_updates: true on the step allows it)"
            )
        if new_password:
            changes["password"] = self._password(users, parsed, auth)
        elif "auth" in changes and auth not in LOCAL_PASSWORDS:
            changes["password"] = NOT_CACHED
        profile = {}  # column name -> (before, after)
        for fid, data in parsed.profile.items():
            if f"profile field {fid}" in changes:
                held = row.profile.get(fid)
                profile[self._field_name(users, f"profile field {fid}")] = (
                    held[1] if held else "",
                    data,
                )
                users.set_profile(row, fid, data)
        columns = {c: v for c, v in changes.items() if not c.startswith("profile field")}
        if columns or profile:
            users.update(row, columns, profile)
        if columns.get("suspended") == 1:
            row.end_sessions = True
        if not changes:
            return LineResult(number, UNCHANGED, summary, "; ".join(notes))
        names = [self._field_name(users, c) for c in changes]
        notes.insert(0, "set " + ", ".join(names))
        return LineResult(number, CHANGED, summary, "; ".join(notes))

    @staticmethod
    def _field_name(users: UserState, change: str) -> str:
        if not change.startswith("profile field "):
            return change
        fid = int(change.rsplit(" ", 1)[1])
        return next((n for n, s in users.profile_fields.items() if s[0] == fid), change)

    @staticmethod
    def _delete(
        users: UserState, row: UserRow | None, number: int, summary: str, by: str, value: str
    ) -> LineResult:
        if row is None:
            return LineResult(number, UNCHANGED, summary, f"no user has {by} {excerpt(value)}")
        what = users.protected.get(row.id) if row.id is not None else None
        if what:
            raise LineFailed(f"{what} cannot be deleted")
        users.delete(row)
        return LineResult(number, CHANGED, summary, "deleted")
