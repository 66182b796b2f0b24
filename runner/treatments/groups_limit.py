"""clean_empty_groups' guard: `max_changes: {delete_group: N}` (or its older name
`max_deletions`): a count of the empty groups the run deletes, or a share ('20%') of
the groups a course has; over it, the step fails and deletes nothing (a truncated
feed emptied the groups)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from runner.core.limits import parse_limit
from runner.treatments.groups_rules import Row, chunks

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from runner.db.tables import MoodleTables
    from runner.step.preview import Withheld


def refusal(
    limit: tuple[int | str, str] | None,
    groups: Sequence[Row],
    conn: Connection,
    t: MoodleTables,
    withheld: Withheld | None,
) -> str | None:
    """Why the deletions go over the limit (None: they do not)."""
    parsed = parse_limit(limit[0]) if limit is not None else None
    if limit is None or parsed is None or not groups:
        return None
    value, percent = parsed
    given, name = limit
    if not percent:
        if len(groups) > value:
            return (
                f"{len(groups)} empty groups would be deleted, more than {name} ({given});"
                " nothing deleted"
            )
        return None
    from sqlalchemy import func, select  # a database step's: `validate` does without

    g = t.groups.c
    course_of: dict[int, int] = {}
    made: Counter[int] = Counter()  # a preview's groups: not in the database
    for course, rows in (withheld.groups if withheld is not None else {}).items():
        made[course] += len(rows)
        course_of.update((row[0], course) for row in rows)
    for part in chunks([row[0] for row in groups if row[0] not in course_of]):
        found = conn.execute(select(g.id, g.courseid).where(g.id.in_(part)))
        course_of.update((int(gid), int(course)) for gid, course in found)
    going = Counter(course_of[row[0]] for row in groups)
    have: dict[int, int] = {}
    for part in chunks(sorted(going)):
        query = select(g.courseid, func.count()).where(g.courseid.in_(part)).group_by(g.courseid)
        have.update((int(course), int(n)) for course, n in conn.execute(query))
    for course, n in sorted(going.items()):
        before = have.get(course, 0) + made[course]
        share = 100 * n / max(before, n)
        if share > value:
            label = next(row[3] for row in groups if course_of[row[0]] == course)
            return (
                f"{n} of the {before} groups of course {label} would be deleted"
                f" ({share:.0f}%), more than {name} ({given}); nothing deleted"
            )
    return None
