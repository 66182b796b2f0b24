"""max_unenrolments: a file that would unenrol more than the step allows is rejected
whole, nothing of it applied (a truncated SIS export must not unenrol a campus).

The limit is a count of enrolments the file removes, or a percentage: the file is
rejected when a course loses more than that share of its enrolments. The guard protects
the enrolments a course had: a course with none before the file is never over a
percentage; otherwise the share is of the larger of its enrolments before the file and
its enrolments when the file removed them (the file's own additions count on both
sides: "add 30, then del 1" removes 1 of 30, not of the enrolments before).
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
    if limit is None or not tally.removed:
        return
    value, percent = limit
    if not percent:
        total = sum(tally.removed.values())
        if total > value:
            raise ControlFileError(
                0,
                f"it unenrols {total:,} users, more than max_unenrolments {setting}: a"
                " truncated export? Nothing of it applied; raise max_unenrolments if the"
                " change is real",
            )
        return
    courses = sorted(tally.removed)
    now = _counts(state, courses)
    withheld = state.withheld
    for course in courses:
        if withheld is not None:  # the database has none of the preview's changes
            before = now.get(course, 0) + withheld.enrolments_delta.get(course, 0)
        else:
            before = now.get(course, 0) + tally.removed[course] - tally.added[course]
        if before <= 0:
            continue  # no enrolment the course had is lost
        base = before + tally.peak[course]
        share = 100 * tally.removed[course] / base
        if share > value:
            had = "" if base == before else f", {before:,} before the file"
            raise ControlFileError(
                0,
                f"it unenrols {tally.removed[course]:,} of the {base:,} enrolments of"
                f" {tally.keys[course]} ({share:.0f}%{had}), more than max_unenrolments"
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
