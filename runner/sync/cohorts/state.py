"""The cohorts of the site and the memberships a cohorts file's batch names, their
changes, and how they are written (as Moodle's cohort_add_cohort, cohort_update_cohort,
cohort_delete_cohort, cohort_add_member and cohort_remove_member write them).

The site's cohorts are read once per file (a site has hundreds, not millions); the
memberships a batch names are read with one SELECT on Moodle's unique (cohortid,
userid) key, and written at the end of the batch. A new cohort is inserted at once
(later lines need its id). A preview keeps its changes in runner.step.preview.Withheld
(cohorts, cohort_members) instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from runner.core.errors import StepError
from runner.core.text import excerpt, number, quoted
from runner.db.tables import new_id
from runner.sync import cascade
from runner.sync.base import LineFailed
from runner.sync.part import BatchPart, update_rows
from runner.sync.writes import chunks

if TYPE_CHECKING:
    from runner.sync.state import SiteState

CONTEXT_SYSTEM, CONTEXT_COURSECAT = 10, 40
FORMAT_HTML = 1
#: a cohort as the state holds it: these columns of Moodle's cohort table
COHORT_COLUMNS = ("id", "name", "idnumber", "contextid", "component", "description")
Pair = tuple[int, int]  # (cohort id, user id)


class CohortState(BatchPart):
    def __init__(self, site: SiteState) -> None:
        super().__init__(site)
        #: the step's cohort_key (set by the command from the header on)
        self.key = "idnumber"
        conn = self.raw.conn
        c = self.t.cohort.c
        self.cohorts: dict[int, dict[str, Any]] = {}
        for row in conn.execute(select(*(c[name] for name in COHORT_COLUMNS))):
            self.cohorts[int(row[0])] = dict(zip(COHORT_COLUMNS, row, strict=True))
        if self.withheld is not None:
            for cid, kept in self.withheld.cohorts.items():
                if kept is None:
                    self.cohorts.pop(cid, None)
                else:
                    self.cohorts[cid] = dict(kept)
        self._contexts: dict[tuple[str, str], int | str] = {}
        self._index: dict[str, dict[str, list[int]]] = {}
        self._synced: dict[int, int] | None = None
        self.reset()

    def reset(self) -> None:
        #: the batch's memberships: pair -> row id (None: added by the batch)
        self.members: dict[Pair, int | None] = {}
        self.added: set[Pair] = set()
        self.removed: dict[Pair, int | None] = {}
        self.updated: dict[int, dict[str, Any]] = {}
        self.deleted: set[int] = set()

    # -- cohorts -----------------------------------------------------------------------------

    def find(self, key: str, value: str) -> int | None:
        """The id of the cohort whose `key` (idnumber, name, id) is `value`."""
        if key == "id":
            cid = number(value)
            return cid if cid is not None and cid in self.cohorts else None
        index = self._index.get(key)
        if index is None:  # made again after a change: changes are rare, lookups not
            index = self._index[key] = {}
            for cid, row in self.cohorts.items():
                index.setdefault(str(row[key] or ""), []).append(cid)
        found = index.get(value, [])
        if len(found) > 1:
            raise LineFailed(f"{len(found)} cohorts have {key} {quoted(value)}")
        return found[0] if found else None

    def context(self, column: str, value: str) -> int:
        """The context of a cohort: the system's, or a category's (by id or idnumber)."""
        cached = self._contexts.get((column, value))
        if cached is None:
            cached = self._contexts[(column, value)] = self._context(column, value)
        if isinstance(cached, str):
            raise LineFailed(cached)
        return cached

    def _context(self, column: str, value: str) -> int | str:
        ctx, cat = self.t.context.c, self.t.course_categories.c
        conn = self.raw.conn
        if not value:
            found = conn.execute(select(ctx.id).where(ctx.contextlevel == CONTEXT_SYSTEM)).scalar()
            if found is None:
                raise StepError("the site has no system context (is it a Moodle database?)")
            return int(found)
        category = number(value)
        if column == "ccatcontext" and category is None:
            return f"ccatcontext {quoted(value)} is not a category id"
        where = cat.id == category if column == "ccatcontext" else cat.idnumber == value
        ids = conn.execute(select(cat.id).where(where)).scalars().all()
        if len(ids) != 1:
            key = "idnumber" if column == "ccatcontextidnumber" else "id"
            return f"{len(ids) or 'no'} categories have {key} {excerpt(str(value))}"
        found = conn.execute(
            select(ctx.id).where(ctx.contextlevel == CONTEXT_COURSECAT, ctx.instanceid == ids[0])
        ).scalar()
        return int(found) if found is not None else f"category {excerpt(str(value))} has no context"

    def create(self, name: str, idnumber: str | None, description: str, context: int) -> int:
        row = {
            "name": name,
            "idnumber": idnumber,
            "contextid": context,
            "component": "",
            "description": description,
        }
        if self.withheld is not None:
            cid = self.withheld.new_id()
            self.withheld.put(self.withheld.cohorts, cid, {"id": cid, **row})
        else:
            result = self.raw.conn.execute(
                self.t.cohort.insert().values(
                    **row,
                    descriptionformat=FORMAT_HTML,
                    visible=1,
                    theme="",
                    timecreated=self.now,
                    timemodified=self.now,
                )
            )
            cid = new_id(result)
        self.cohorts[cid] = {"id": cid, **row}
        self._index.clear()
        self.site.journal.cohort("cohort_created", self.cohorts[cid])
        return cid

    def update(self, cid: int, changes: dict[str, Any]) -> None:
        before = {column: self.cohorts[cid].get(column) for column in changes}
        self.cohorts[cid].update(changes)
        self._index.clear()
        self.updated.setdefault(cid, {}).update(changes)
        self.site.journal.cohort("cohort_updated", self.cohorts[cid], changes, before)

    def synced_by(self, cid: int) -> int:
        """How many cohort sync enrol instances use the cohort."""
        if self._synced is None:
            e = self.t.enrol.c
            rows = self.raw.conn.execute(
                select(e.customint1, func.count()).where(e.enrol == "cohort").group_by(e.customint1)
            )
            self._synced = {int(c): int(n) for c, n in rows if c is not None}
        return self._synced.get(cid, 0)

    def delete(self, cid: int) -> None:
        members = [(rid, uid) for (c, uid), rid in self.members.items() if c == cid]
        cascade.cohort_deleted(self.site.journal, cid, members)
        self.site.journal.cohort("cohort_deleted", self.cohorts[cid])
        del self.cohorts[cid]
        self._index.clear()
        self.deleted.add(cid)
        self.updated.pop(cid, None)
        for pair in [p for p in self.members if p[0] == cid]:
            del self.members[pair]
        self.added = {p for p in self.added if p[0] != cid}

    # -- memberships -------------------------------------------------------------------------

    def load(self, pairs: Iterable[Pair], whole: Iterable[int]) -> None:
        """The batch's memberships: these pairs, and every member of the `whole`
        cohorts (a `free` line's)."""
        self.site.writes.wait()
        m = self.t.cohort_members
        keys = sorted({p for p in pairs if p[0] > 0 and p[1] > 0})
        for part in chunks(keys, self.raw.pairs):
            rows = self.raw.select_keys(
                m, ("id", "cohortid", "userid"), ("cohortid", "userid"), part
            )
            for rid, cid, uid in rows:
                self.members[(int(cid), int(uid))] = int(rid)
        cohorts = sorted({c for c in whole if c > 0})
        for part in chunks(cohorts, self.raw.chunk):
            for rid, cid, uid in self.raw.select_in(
                m, ("id", "cohortid", "userid"), "cohortid", part
            ):
                self.members[(int(cid), int(uid))] = int(rid)
        if self.withheld is not None:
            wanted, full = set(keys), set(whole)
            for pair, present in self.withheld.cohort_members.items():
                if pair in wanted or pair[0] in full:
                    if present:
                        self.members.setdefault(pair, None)
                    else:
                        self.members.pop(pair, None)

    def members_of(self, cid: int) -> list[int]:
        return [uid for c, uid in self.members if c == cid]

    def unlisted(self, cohorts: Sequence[int], listed: dict[int, set[int]]) -> list[Pair]:
        """mode: snapshot: the members of these cohorts (whole: loaded) the file does
        not list (`listed`: cohort id -> the users it lists)."""
        self.load((), cohorts)
        wanted = set(cohorts)
        return sorted(
            p for p in self.members if p[0] in wanted and p[1] not in listed.get(p[0], ())
        )

    def add_member(self, cid: int, uid: int) -> bool:
        pair = (cid, uid)
        if pair in self.members:
            return False
        if pair in self.removed:
            self.members[pair] = self.removed.pop(pair)
        else:
            self.members[pair] = None
            self.added.add(pair)
        self.site.journal.cohort_member("cohort_member_added", cid, uid)
        self.site.tally.add("cohort", cid, pair)
        return True

    def remove_member(self, cid: int, uid: int) -> bool:
        pair = (cid, uid)
        if pair not in self.members:
            return False
        rid = self.members.pop(pair)
        if pair in self.added:
            self.added.discard(pair)
        else:
            self.removed[pair] = rid
        self.site.journal.cohort_member("cohort_member_removed", cid, uid, rid)
        cohort = self.cohorts.get(cid, {})
        name = str(cohort.get("idnumber") or cohort.get("name") or cid)
        self.site.tally.remove("remove_cohort_member", cid, pair, name)
        return True

    # -- writes ------------------------------------------------------------------------------

    def _withhold(self) -> None:
        assert self.withheld is not None
        w = self.withheld
        for cid, changes in self.updated.items():
            w.put(w.cohorts, cid, {**self.cohorts[cid], **changes})
        for cid in self.deleted:
            w.put(w.cohorts, cid, None)
        for pair in self.added:
            w.put(w.cohort_members, pair, True)
        for pair in self.removed:
            w.put(w.cohort_members, pair, False)

    def _write(self) -> None:
        raw, t = self.raw, self.t
        gone = sorted(self.deleted)
        for part in chunks(gone, raw.chunk):
            raw.delete_ids(t.cohort_members, part, "cohortid")
            raw.delete_ids(t.cohort, part)
        removed = sorted(
            r for p, r in self.removed.items() if r is not None and p[0] not in self.deleted
        )
        for part in chunks(removed, raw.chunk):
            raw.delete_ids(t.cohort_members, part)
        rows = [(cid, uid, self.now) for cid, uid in sorted(self.added)]
        raw.run(
            raw.inserts(
                t.cohort_members, ("cohortid", "userid", "timeadded"), rows, ("cohortid", "userid")
            )
        )
        update_rows(raw, t.cohort, self.updated, self.now)
