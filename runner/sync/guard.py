"""max_changes: a file that would take more than the step allows is rejected whole,
nothing of it applied (a truncated SIS export must not unenrol a campus).

One vocabulary for every destructive change a sync makes (runner.sync.base.GUARDED):
`unenrol` and `suspend` (a course's user enrolments), `remove_member` (a group's
members), `remove_cohort_member` (a cohort's members), `delete_user` and `suspend_user`
(the site's users). Each limit is a count of the rows the file takes, or a share of its
scope: the file is rejected when one course, group or cohort (or the site) loses more
than that share of the rows it had before the file. Only rows that existed before the
file count ("add 30, then del 1" loses nothing it had), and the file's additions do
not dilute the share ("add 48, then del the 12 the course had" loses 12 of 12). A
preview counts "before" as a real run would: after the run's earlier files.
`max_unenrolments` is `max_changes: {unenrol: ...}` by its old name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from sqlalchemy import FromClause, func, select

from runner.core.limits import parse_limit
from runner.sync.base import GUARDED
from runner.sync.reader import ControlFileError
from runner.sync.writes import chunks

if TYPE_CHECKING:
    from runner.sync.state import SiteState

#: what a change does, said of a count of rows, and the rows its scope holds
_SAID = {
    "unenrol": ("unenrols", "user", "enrolments"),
    "suspend": ("suspends", "enrolment", "enrolments"),
    "remove_member": ("removes", "group member", "members"),
    "remove_cohort_member": ("removes", "cohort member", "members"),
    "delete_user": ("deletes", "user", "users"),
    "suspend_user": ("suspends", "user", "users"),
}
_SCOPE_NAMES = {"course": "{}", "group": "group {}", "cohort": "cohort {}", "site": "{}"}


def _counts(state: SiteState, scope: str, ids: list[int]) -> dict[int, int]:
    """The rows of each scope in the database now (its enrolments, members, users)."""
    t = state.t
    if scope == "site":
        query = select(func.count()).select_from(t.user).where(t.user.c.deleted == 0)
        return {0: int(state.raw.conn.execute(query).scalar_one())}
    source: FromClause
    if scope == "course":
        ue, e = t.user_enrolments.c, t.enrol.c
        key, source = e.courseid, t.user_enrolments.join(t.enrol, e.id == ue.enrolid)
    elif scope == "group":
        key, source = t.groups_members.c.groupid, t.groups_members
    else:
        key, source = t.cohort_members.c.cohortid, t.cohort_members
    found: dict[int, int] = {}
    for part in chunks(ids):
        rows = state.raw.conn.execute(
            select(key, func.count()).select_from(source).where(key.in_(part)).group_by(key)
        )
        found.update((int(c), int(n)) for c, n in rows)
    return found


def check_changes(state: SiteState, settings: Mapping[str, tuple[int | str, str]]) -> None:
    """ControlFileError when the file's changes go over a limit; call it once the
    file's changes are written (a preview: kept), before the commit."""
    tally = state.tally
    for change, (setting, name) in settings.items():
        limit = parse_limit(setting)
        lost = {sid: n for (c, sid), n in tally.lost.items() if c == change}
        if limit is None or not lost:
            continue
        does, rows, held = _SAID[change]
        advice = (
            f"more than {name} {setting}: a truncated export? Nothing of it applied; raise"
            f" {name} if the change is real"
        )
        value, percent = limit
        if not percent:
            total = sum(lost.values())
            if total > value:
                what = rows if total == 1 else f"{rows}s"
                raise ControlFileError(0, f"it {does} {total:,} {what}, {advice}")
            continue
        scope = GUARDED[change]
        now = _counts(state, scope, sorted(lost))
        withheld = state.withheld
        for sid in sorted(lost):
            key = (scope, sid)
            if withheld is not None:  # the database has none of the preview's changes
                before = now.get(sid, 0) + withheld.scope_delta.get(key, 0)
            else:
                before = now.get(sid, 0) + tally.removed[key] - tally.added[key]
            share = 100 * lost[sid] / max(before, lost[sid])
            if share > value:
                name_of = tally.names[key]
                if scope == "group":  # the group's name, and its course's
                    name_of = f"{state.lookups.group_names.get(sid, sid)} of {name_of}"
                where = _SCOPE_NAMES[scope].format(name_of)
                raise ControlFileError(
                    0,
                    f"it {does} {lost[sid]:,} of the {before:,} {held} {where} had before"
                    f" the file ({share:.0f}%), {advice}",
                )


def keep_tally(state: SiteState) -> None:
    """A preview: the file's net changes by scope, for the next files' percentages
    (the database does not have them)."""
    withheld = state.withheld
    if withheld is None:
        return
    tally = state.tally
    for key in set(tally.added) | set(tally.removed):
        net = tally.added[key] - tally.removed[key]
        if net:
            withheld.put(withheld.scope_delta, key, withheld.scope_delta.get(key, 0) + net)
