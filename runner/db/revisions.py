"""A course's cache revision (course.cacherev), which postsync moves on where Moodle
would, and the site's Moodle version, which says where Moodle would.

Moodle caches what it builds from a course (its activity list, the course page's state
in each session) under the course's cache revision: once the revision moves on, the
next request builds them again. postsync cannot reach Moodle's caches (they live in
moodledata, or in a cache server); the revision is in the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, case, select, update

from runner.db.tables import MoodleTables

#: Moodle 4.5.1 (MDL-83185) and later: a group membership added or removed resets the
#: course page state of every session open on the course (groups_add_member and
#: groups_remove_member dispatch a hook whose course-format listener invalidates the
#: `courseeditorstate` session cache of the course, for every session)
COURSE_STATE_ON_MEMBERSHIP = 2024100701


def next_revision(revision: Any, now: int) -> Any:
    """The revision after `revision` (a column), as Moodle's increment_revision_number
    makes it: the time, or one more than the current one when that is already later
    (by less than an hour: a revision further in the future is taken back to now)."""
    return case(
        (revision.is_(None), now),
        (revision < now, now),
        (revision > now + 3600, now),
        else_=revision + 1,
    )


def move_course_revisions(conn: Connection, t: MoodleTables, courses: Any, now: int) -> None:
    """Move on the cache revision of `courses` (ids, or a select of them)."""
    course = t.course
    conn.execute(
        update(course)
        .where(course.c.id.in_(courses))
        .values(cacherev=next_revision(course.c.cacherev, now))
    )


def site_version(conn: Connection, t: MoodleTables) -> float | None:
    """The site's Moodle version (config `version`, e.g. 2024100706.00); None when the
    database has none (not a site Moodle installed)."""
    config = t.config
    value = conn.execute(select(config.c.value).where(config.c.name == "version")).scalar()
    try:
        return float(str(value).strip()) if value is not None else None
    except ValueError:
        return None


def reset_course_states(
    conn: Connection, t: MoodleTables, groups: Sequence[int], now: int, chunk: int
) -> None:
    """Where the site's Moodle resets the course page state of open sessions when a
    group membership changes (4.5.1 and later), what postsync can do for the same
    effect: the courses of `groups` (whose members changed) get a new cache revision,
    which each session's state key is checked against (core_courseformat's
    session_cache), so that every open course page loads the course state again.
    Moodle itself invalidates the key through its cache of invalidation events, which
    postsync cannot reach; the new revision also makes Moodle rebuild the course's
    cached activity list once, as any edit of the course does."""
    if not groups:
        return
    version = site_version(conn, t)
    if version is None or version < COURSE_STATE_ON_MEMBERSHIP:
        return
    g = t.groups
    for start in range(0, len(groups), chunk):
        part = list(groups[start : start + chunk])
        courses = select(g.c.courseid).where(g.c.id.in_(part)).distinct()
        move_course_revisions(conn, t, courses, now)
