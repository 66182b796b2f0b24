"""What a preview's sync would have written, kept in memory instead of the database.

A preview (--check) runs the sync's own code, line by line, against the database read
through a read-only connection; the statements each batch would run are withheld.
What they would have changed is kept here, for the whole run: a later batch, a later
file or a later step (a group_members file after an enrolments file,
clean_empty_groups) reads the database *and* this, and so sees what the run would
have done. Rows the preview would have inserted get ids below zero, which no
database row has.

As a real run applies each control file in its own transaction, a preview applies each
one between `begin` and `commit`; `rollback` (a rejected file) forgets what the file
did.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from runner.step.spill import PairStore

#: (course id, context id, user id): the unit of the sync's per-batch state
Pair = tuple[int, int, int]
#: a pair's state: its enrolments, role assignments and group memberships, each flat
State = tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]


#: the user columns a user is looked up by (runner.sync.lookup, runner.sync.users.state)
USER_KEYS = ("username", "idnumber", "email")


@dataclass
class UserOverlay:
    """The users a preview's users files would have created, changed or deleted: each
    one's written columns (`deleted` among them), by id (below zero: created)."""

    rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: (column, value) -> ids of the overlay's rows with that key value now
    index: dict[tuple[str, str], set[int]] = field(default_factory=dict)

    def _index(self, uid: int, row: dict[str, Any], add: bool) -> None:
        for column in USER_KEYS:
            if column in row and not row.get("deleted"):
                ids = self.index.setdefault((column, str(row[column])), set())
                if add:
                    ids.add(uid)
                else:
                    ids.discard(uid)

    def put(self, uid: int, row: dict[str, Any] | None) -> None:
        old = self.rows.get(uid)
        if old is not None:
            self._index(uid, old, add=False)
            del self.rows[uid]
        if row is not None:
            self.rows[uid] = row
            self._index(uid, row, add=True)

    def match(self, column: str, found: dict[str, list[int]], values: set[str]) -> None:
        """Correct a database lookup (value -> ids) by what the preview changed."""
        for value in list(found):
            kept = [
                i
                for i in found[value]
                if i not in self.rows
                or (
                    not self.rows[i].get("deleted")
                    and str(self.rows[i].get(column, value)) == value
                )
            ]
            if kept:
                found[value] = kept
            else:
                del found[value]
        for value in values:
            for uid in self.index.get((column, value), ()):
                ids = found.setdefault(value, [])
                if uid not in ids:
                    ids.append(uid)


@dataclass
class Withheld:
    #: a pair -> its state after the lines the preview applied, in flat tuples (a
    #: preview of a million lines keeps a million of them, on disk): its enrolments,
    #: its role assignments (as the sync encodes them), its groups as (group id, row
    #: id)...
    pairs: PairStore = field(default_factory=PairStore)
    #: (course id, user id) -> the groups the database had the user in, before (absent:
    #: none)
    members_before: dict[tuple[int, int], tuple[int, ...]] = field(default_factory=dict)
    #: course id -> the enrol instances the preview created: (sortorder, id, plugin, status)
    instances: dict[int, list[tuple[int, int, str, int]]] = field(default_factory=dict)
    #: course id -> the groups the preview created: (id, name, idnumber)
    groups: dict[int, list[tuple[int, str, str]]] = field(default_factory=dict)
    #: group id -> (name, idnumber) the preview's groups files gave it
    group_rows: dict[int, tuple[str, str]] = field(default_factory=dict)
    #: course id -> the groupings the preview created: (id, name, idnumber)
    groupings: dict[int, list[tuple[int, str, str]]] = field(default_factory=dict)
    #: grouping id -> (name, idnumber) the preview's groups files gave it
    grouping_rows: dict[int, tuple[str, str]] = field(default_factory=dict)
    #: (course | group | cohort | site, id) -> the rows (user enrolments, members,
    #: users) the preview's files added minus those removed (runner.sync.guard)
    scope_delta: dict[tuple[str, int], int] = field(default_factory=dict)
    #: (groups | groupings, id) the preview's files would have recorded as the feed's
    #: (runner.db.feed_groups)
    feed_made: dict[tuple[str, int], bool] = field(default_factory=dict)
    #: (grouping id, group id) the preview's groups files linked
    grouping_links: dict[tuple[int, int], bool] = field(default_factory=dict)
    users: UserOverlay = field(default_factory=UserOverlay)
    #: cohort id -> the cohort's row after the preview's cohorts files (None: deleted)
    cohorts: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    #: (cohort id, user id) -> whether the user is a member after the preview
    cohort_members: dict[tuple[int, int], bool] = field(default_factory=dict)
    _last_id: int = 0
    #: a preview that only counts what the file takes (max_changes, before a file's
    #: chunks): its outcome and state are thrown away, so passwords are not hashed
    counting: bool = False
    #: how to undo what the current file did, newest last
    _undo: list[Callable[[], None]] = field(default_factory=list)

    def begin(self) -> None:
        self._undo = []
        self.pairs.begin()

    def commit(self) -> None:
        self._undo = []
        self.pairs.commit()

    def rollback(self) -> None:
        while self._undo:
            self._undo.pop()()
        self.pairs.rollback()

    def new_id(self) -> int:
        """An id for a row the preview would have inserted (never a database row's)."""
        self._last_id -= 1
        return self._last_id

    def keep(self, states: Iterable[tuple[Pair, State]]) -> None:
        """Pairs' states after a batch (undone by `rollback`: the file's savepoint)."""
        self.pairs.put_all(states)

    def user(self, uid: int, changes: dict[str, Any]) -> None:
        """A user's columns the preview would have written (all of them: created)."""
        old = self.users.rows.get(uid)
        self.users.put(uid, {**(old or {}), **changes})
        self._undo.append(lambda: self.users.put(uid, old))

    def put(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        """table[key] = value, undone by `rollback`."""
        missing = key not in table
        old = table.get(key)
        table[key] = value
        self._undo.append(lambda: table.pop(key) if missing else table.__setitem__(key, old))

    def created(self, table: dict[int, list[Any]], course: int, row: Any) -> None:
        """An instance or group the preview would have inserted in `course`."""
        rows = table.setdefault(course, [])
        rows.append(row)
        self._undo.append(lambda: rows.__delitem__(-1))

    def seen(self, course: int, user: int, groups: tuple[int, ...]) -> None:
        """The groups the database has a pair's user in, when first loaded."""
        if groups:
            self.members_before.setdefault((course, user), groups)

    def member_changes(self) -> Counter[int]:
        """Group id -> members the preview's sync added minus those it removed."""
        changes: Counter[int] = Counter()
        for (course, _context, user), (_enrolments, _roles, members) in self.pairs.items():
            before = self.members_before.get((course, user), ())
            after = members[0::2]
            changes.update(g for g in after if g not in before)
            changes.subtract(g for g in before if g not in after)
        return changes

    def created_groups(self, courses: set[int] | None) -> list[tuple[int, int, str]]:
        """(group id, course id, name) of the groups the preview created (in `courses`,
        or all)."""
        return [
            (gid, course, name)
            for course, created in self.groups.items()
            if courses is None or course in courses
            for gid, name, _idnumber in created
        ]
