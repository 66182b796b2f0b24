"""max_unenrolments: a file that would unenrol more than the step allows is rejected
whole, nothing of it applied (a truncated SIS export must not unenrol a campus).

The guard protects the enrolments a course had before the file: it counts only the
removals of those (an enrolment the file itself added and removed again is no loss),
whether the limit is a count of them, or a percentage: the file is rejected when a
course loses more than that share of the enrolments it had before the file. A course
with none before is never over ("add 30, then del 1" loses nothing it had), and the
file's additions do not dilute the share ("add 48, then del the 12 the course had" loses
12 of 12). A preview counts "before" as a real run would: after the run's earlier files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select

from runner.sync.reader import ControlFileError
from runner.sync.writes import chunks

if TYPE_CHECKING:
    from runner.sync.state import SiteState


def parse_limit(value: int | str | None) -> tuple[float, bool] | None:
    """(limit, is a percentage) of a max_unenrolments setting (None: no limit)."""
    if value is None:
        return None
    if isinstance(value, str) and value.endswith("%"):
        return float(value[:-1]), True
    return float(value), False


def _counts(state: SiteState, courses: list[int]) -> dict[int, int]:
    """Each course's user enrolments in the database now."""
    ue, e = state.t.user_enrolments.c, state.t.enrol.c
    found: dict[int, int] = {}
    for part in chunks(courses):
        rows = state.raw.conn.execute(
            select(e.courseid, func.count())
            .select_from(state.t.user_enrolments.join(state.t.enrol, e.id == ue.enrolid))
            .where(e.courseid.in_(part))
            .group_by(e.courseid)
        )
        found.update((int(c), int(n)) for c, n in rows)
    return found


def check_unenrolments(state: SiteState, setting: int | str | None) -> None:
    """ControlFileError when the file's unenrolments go over the limit; call it once
    the file's changes are written (a preview: kept), before the commit."""
    limit = parse_limit(setting)
    tally = state.tally
    if limit is None or not tally.lost:
        return
    value, percent = limit
    if not percent:
        total = sum(tally.lost.values())
        if total > value:
            raise ControlFileError(
                0,
                f"it unenrols {total:,} users, more than max_unenrolments {setting}: a"
                " truncated export? Nothing of it applied; raise max_unenrolments if the"
                " change is real",
            )
        return
    courses = sorted(tally.lost)
    now = _counts(state, courses)
    withheld = state.withheld
    for course in courses:
        if withheld is not None:  # the database has none of the preview's changes
            before = now.get(course, 0) + withheld.enrolments_delta.get(course, 0)
        else:
            before = now.get(course, 0) + tally.removed[course] - tally.added[course]
        lost = tally.lost[course]
        share = 100 * lost / max(before, lost)
        if share > value:
            raise ControlFileError(
                0,
                f"it unenrols {lost:,} of the {before:,} enrolments {tally.keys[course]}"
                f" had before the file ({share:.0f}%), more than max_unenrolments"
                f" {setting}: a truncated export? Nothing of it applied; raise"
                " max_unenrolments if the change is real",
            )


def keep_tally(state: SiteState) -> None:
    """A preview: the file's net enrolment changes by course, for the next files'
    percentages (the database does not have them)."""
    withheld = state.withheld
    if withheld is None:
        return
    tally = state.tally
    for course in set(tally.added) | set(tally.removed):
        net = tally.added[course] - tally.removed[course]
        if net:
            old = withheld.enrolments_delta.get(course, 0)
            withheld.put(withheld.enrolments_delta, course, old + net)
