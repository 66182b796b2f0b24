"""cohorts: tool_sync's cohort file (cohorts.csv)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from runner.core.text import excerpt, quoted
from runner.sync.base import CHANGED, FAILED, UNCHANGED, LineFailed, LineResult, SyncOptions
from runner.sync.cohorts.state import CohortState
from runner.sync.reader import Columns, ControlFileError, DataLine, Header
from runner.sync.snapshot import Listed, missed
from runner.sync.writes import chunks

if TYPE_CHECKING:
    from runner.sync.state import SiteState

COMMANDS = ("add", "del", "free")
#: the column naming the cohort, by the step's cohort_key
KEY_COLUMN = {"idnumber": "cidnumber", "name": "cname", "id": "cid"}
#: mode: snapshot: the cohorts whose members are loaded whole at a time
SNAPSHOT_COHORTS = 100


class Cohorts:
    """Create and delete cohorts, add and remove their members (cohorts.csv).

    Columns (header line, any order; `;` by default):
      cidnumber, cname, cid: the cohort's idnumber, name and id; the one the step's
        `cohort_key` names (idnumber default, name, id) identifies the cohort and must
        be in the header.
      userid: a member, by `user_key` (idnumber default, username, email, id).
      cmd: add (default): the cohort (created when missing, with `create_cohorts`, on
        by default), and the member if userid has a value; del: the member if userid
        has a value, else the cohort with its members; free: every member goes.
      cdescription: the cohort's description (a non-empty value updates it).
      ccatcontext, ccatcontextidnumber: the category (id, idnumber) whose context the
        cohort is in; the system's by default.

    A cohort another plugin made (its component is not empty) is left alone: a line
    changing it or its members fails. A cohort that a cohort sync enrol instance
    uses is not deleted (the line fails): delete it in Moodle, whose cohort_deleted
    event removes those instances. Members added or removed here reach the courses
    cohort syncs enrol them in at the next run of Moodle's enrol_cohort task (hourly),
    not at once: postsync triggers no cohort_member_added event.

    Example line: `add;COHORT1;U0001;Teacher cohort 1;COH001`
    (header `cmd;cname;userid;cdescription;cidnumber`)

    With `mode: snapshot` the file is the whole truth for the cohorts it names: its
    lines are adds (a del or free line fails), and the members of those cohorts it does
    not list are removed (`missing: remove`) or kept (`missing: keep`); a cohort another
    plugin owns is never touched (see "Snapshot feeds").
    """

    columns = Columns(
        (),
        (
            "cmd",
            "cid",
            "cname",
            "cidnumber",
            "cdescription",
            "userid",
            "ccatcontext",
            "ccatcontextidnumber",
        ),
        refused=(
            (r"component", "cohorts are written as Moodle's own (component ''): leave it out"),
        ),
    )

    def header(self, state: SiteState, header: Header, options: SyncOptions) -> None:
        column = KEY_COLUMN[options.cohort_key]
        if column not in header.names:
            raise ControlFileError(
                header.number,
                f"missing column {quoted(column)}: it names the cohort (cohort_key:"
                f" {options.cohort_key})",
            )
        state.part(CohortState).key = options.cohort_key

    def prepare(self, state: SiteState, lines: Sequence[DataLine]) -> None:
        cohorts = state.part(CohortState)
        key = KEY_COLUMN[cohorts.key]
        rows = [line.values for line in lines if line.values is not None]
        state.lookups.resolve_users(r.get("userid", "") for r in rows)
        pairs, whole = set(), set()
        for r in rows:
            try:
                cid = cohorts.find(cohorts.key, r.get(key, ""))
            except LineFailed:
                continue
            if cid is None:
                continue
            cmd = (r.get("cmd") or "add").lower()
            if cmd == "free" or (cmd == "del" and not r.get("userid")):
                whole.add(cid)  # every member: freed, or deleted with the cohort
            user = state.lookups.users.get(r.get("userid", ""))
            if isinstance(user, int):
                pairs.add((cid, user))
        cohorts.load(pairs, whole)

    def apply(self, state: SiteState, line: DataLine, options: SyncOptions) -> LineResult:
        if line.values is None:
            return LineResult(line.number, FAILED, "", line.error or "unreadable")
        cohorts = state.part(CohortState)
        v = line.values
        cmd = (v.get("cmd") or "add").lower()
        key = options.cohort_key
        value = v.get(KEY_COLUMN[key], "")
        member = v.get("userid", "")
        summary = (
            f"{excerpt(cmd)} {excerpt(member) + ' in ' if member else ''}cohort"
            f" {excerpt(value) or '-'}"
        )
        try:
            if cmd not in COMMANDS:
                raise LineFailed(f"unknown cmd {quoted(cmd)} ({', '.join(COMMANDS)})")
            if options.snapshot is not None and cmd != "add":
                raise LineFailed(
                    f"cmd {cmd} in a snapshot (mode: snapshot): the file lists the members;"
                    " what it does not list goes"
                )
            if not value:
                raise LineFailed(f"empty {KEY_COLUMN[key]}")
            cid = cohorts.find(key, value)
            if cid is not None and options.snapshot is not None:
                state.part(Listed).named(cid)  # in the snapshot's scope, whatever the line's fate
            user = state.lookups.user(member, "userid") if member else None
            if cid is not None and cohorts.cohorts[cid]["component"]:
                raise LineFailed(f"the cohort belongs to {cohorts.cohorts[cid]['component']}")
            if cmd == "add":
                return self._add(cohorts, cid, user, v, line.number, summary, options)
            if cid is None:
                return LineResult(
                    line.number, UNCHANGED, summary, f"no cohort has {key} {excerpt(value)}"
                )
            if cmd == "free":
                gone = [cohorts.remove_member(cid, u) for u in cohorts.members_of(cid)]
                status = CHANGED if gone else UNCHANGED
                return LineResult(
                    line.number, status, summary, f"{len(gone)} removed" if gone else ""
                )
            if user is not None:
                changed = cohorts.remove_member(cid, user)
                return LineResult(line.number, CHANGED if changed else UNCHANGED, summary)
            synced = cohorts.synced_by(cid)
            if synced:
                raise LineFailed(
                    f"{synced} cohort sync enrol instance(s) use the cohort: delete it in"
                    " Moodle, which removes them"
                )
            cohorts.delete(cid)
            return LineResult(line.number, CHANGED, summary, "deleted")
        except LineFailed as exc:
            return LineResult(line.number, FAILED, summary, str(exc))

    @staticmethod
    def _add(
        cohorts: CohortState,
        cid: int | None,
        user: int | None,
        v: dict[str, str],
        number: int,
        summary: str,
        options: SyncOptions,
    ) -> LineResult:
        category = "ccatcontextidnumber" if v.get("ccatcontextidnumber") else "ccatcontext"
        notes = []
        if cid is None:
            if not options.create_cohorts:
                raise LineFailed(
                    f"no cohort has {options.cohort_key}"
                    f" {excerpt(v[KEY_COLUMN[options.cohort_key]])}"
                )
            name = v.get("cname") or v.get("cidnumber") or ""
            if not name:
                raise LineFailed("a new cohort needs a cname")
            context = cohorts.context(category, v.get(category, ""))
            cid = cohorts.create(
                name, v.get("cidnumber") or None, v.get("cdescription", ""), context
            )
            notes.append("created")
        else:
            row = cohorts.cohorts[cid]
            wanted: dict[str, Any] = {
                "description": v.get("cdescription", ""),
                "name": v.get("cname", "") if options.cohort_key != "name" else "",
                "idnumber": v.get("cidnumber", "") if options.cohort_key != "idnumber" else "",
            }
            if v.get(category):
                wanted["contextid"] = cohorts.context(category, v[category])
            changes = {c: x for c, x in wanted.items() if x not in ("", None) and row[c] != x}
            if changes:
                cohorts.update(cid, changes)
                notes.append("set " + ", ".join(sorted(changes)))
        if options.snapshot is not None:
            cohorts.site.part(Listed).named(cid)
            if user is not None:
                cohorts.site.part(Listed).user(cid, user)
        added = user is not None and cohorts.add_member(cid, user)
        status = CHANGED if notes or added else UNCHANGED
        return LineResult(number, status, summary, "; ".join(notes))

    def snapshot_key(self, values: dict[str, str], options: SyncOptions) -> tuple[str, str] | None:
        member = values.get("userid", "")
        return (values.get(KEY_COLUMN[options.cohort_key], ""), member) if member else None

    def listed(
        self, state: SiteState, line: DataLine, options: SyncOptions
    ) -> tuple[int, int | None, None] | None:
        assert line.values is not None
        v = line.values
        try:
            key = options.cohort_key
            cid = state.part(CohortState).find(key, v.get(KEY_COLUMN[key], ""))
        except LineFailed:
            return None
        if cid is None:
            return None
        try:
            return cid, state.lookups.user(v.get("userid", ""), "userid"), None
        except LineFailed:
            return cid, None, None

    def missing(self, state: SiteState, options: SyncOptions) -> Iterator[list[LineResult]]:
        """mode: snapshot: the members of the cohorts the file names that it does not
        list (a cohort another plugin owns is left alone), removed (`missing: remove`)
        or kept, a few cohorts at a time."""
        cohorts = state.part(CohortState)
        if options.snapshot is None or options.snapshot.missing == "keep":
            return
        part_listed = state.part(Listed)
        listed = part_listed.users
        named = [
            c
            for c in part_listed.named_scopes()
            if c in cohorts.cohorts and not cohorts.cohorts[c]["component"]
        ]
        for part in chunks(named, SNAPSHOT_COHORTS):
            gone = [p for p in cohorts.unlisted(part, listed) if part_listed.may_act(*p)]
            names = state.lookups.user_names(sorted({uid for _, uid in gone}))
            results = []
            for cid, uid in gone:
                cohorts.remove_member(cid, uid)
                cohort = cohorts.cohorts[cid][cohorts.key] if cohorts.key != "id" else cid
                summary = (
                    f"del {excerpt(names.get(uid, str(uid)))} in cohort {excerpt(str(cohort))}"
                )
                results.append(missed(summary))
            yield results
