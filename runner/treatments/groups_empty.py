"""clean_empty_groups: the empty groups of the courses, and the groupings' groups, as the
run's sync leaves them (a preview's sync counted in)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from runner.treatments.groups_rules import GroupsConfig, Row, chunks

if TYPE_CHECKING:
    from runner.step.preview import Withheld


def _grouping_query(t: Any) -> Any:
    from sqlalchemy import select

    gr, gg, c = t.groupings, t.groupings_groups, t.course
    return (
        select(gr.c.id, gr.c.name, gr.c.idnumber, c.c.shortname, gg.c.groupid)
        .join(c, c.c.id == gr.c.courseid)
        .outerjoin(gg, gg.c.groupingid == gr.c.id)
    )


def scan(
    conn: Any,
    t: Any,
    config: GroupsConfig,
    withheld: Withheld | None,
    courses: list[int],
) -> tuple[list[Row], dict[Row, list[int]]]:
    """The empty groups of the courses (all with `courses: all`), and each grouping
    of them with its groups (when `groupings`).

    A group is empty when it has no member after the sync: the database's members,
    with the changes a preview's sync kept instead of writing counted in
    (runner.step.preview; none in a real run), so a preview finds the groups its sync
    would have emptied: those the database has empty and the sync added no one to,
    those whose every member the sync removed, those the sync created and left empty.
    Names and idnumbers are as the preview's groups files left them.
    """
    from sqlalchemy import exists, func, select

    g, c, m = t.groups, t.course, t.groups_members
    changes = withheld.member_changes() if withheld is not None else Counter()
    label = select(g.c.id, g.c.name, g.c.idnumber, c.c.shortname).join(c, c.c.id == g.c.courseid)
    no_member = ~exists().where(m.c.groupid == g.c.id)
    losing = sorted(gid for gid, change in changes.items() if change < 0 and gid > 0)
    empty: list[Row] = []
    links: dict[Row, list[int]] = {}  # grouping -> its groups
    scopes = [None] if config.all_courses else list(chunks(courses))
    for chunk in scopes:
        where = [] if chunk is None else [g.c.courseid.in_(chunk)]
        for row in conn.execute(label.where(no_member, *where)).fetchall():
            if changes[row[0]] <= 0:  # nobody added by a preview's sync
                empty.append((row[0], row[1], row[2] or "", row[3]))
        if config.groupings:
            where = [] if chunk is None else [t.groupings.c.courseid.in_(chunk)]
            for gid, name, idnumber, course, member in conn.execute(
                _grouping_query(t).where(*where)
            ).fetchall():
                held = links.setdefault((gid, name, idnumber or "", course), [])
                if member is not None:
                    held.append(member)
    scope = None if config.all_courses else set(courses)
    for part in chunks(losing):  # a preview: groups its sync took members from
        counted = (
            select(g.c.id, g.c.name, g.c.idnumber, c.c.shortname, g.c.courseid, func.count())
            .join(c, c.c.id == g.c.courseid)
            .join(m, m.c.groupid == g.c.id)
            .where(g.c.id.in_(part))
            .group_by(g.c.id, g.c.name, g.c.idnumber, c.c.shortname, g.c.courseid)
        )
        for gid, name, idnumber, course, courseid, count in conn.execute(counted).fetchall():
            if count + changes[gid] <= 0 and (scope is None or courseid in scope):
                empty.append((gid, name, idnumber or "", course))
    if withheld is None:
        return empty, links
    # groups and groupings a preview's sync would have made
    created = withheld.created_groups(scope)
    made = [
        (gid, name, idnumber, course)
        for course, rows in withheld.groupings.items()
        if config.groupings and (scope is None or course in scope)
        for gid, name, idnumber in rows
    ]
    wanted = {course for _, course, _ in created} | {row[3] for row in made}
    names = dict(conn.execute(select(c.c.id, c.c.shortname).where(c.c.id.in_(wanted))).all())
    empty += [(gid, name, "", names[course]) for gid, course, name in created if changes[gid] <= 0]
    links = _previewed_groupings(withheld, links, made, names)
    empty = [
        (gid, *withheld.group_rows.get(gid, (name, idnumber)), course)
        for gid, name, idnumber, course in empty
    ]
    return empty, links


def _previewed_groupings(
    withheld: Withheld,
    links: dict[Row, list[int]],
    made: list[tuple[int, str, str, int]],
    courses: dict[int, str],
) -> dict[Row, list[int]]:
    """The groupings as a preview's groups files left them: those they made, their
    groups linked, their names and idnumbers (grouping -> its groups)."""
    held: dict[int, list[int]] = {key[0]: groups for key, groups in links.items()}
    keys = {key[0]: key for key in links}
    for gid, name, idnumber, course in made:
        keys[gid] = (gid, name, idnumber, courses[course])
        held[gid] = []
    for (grouping, group), linked in withheld.grouping_links.items():
        if grouping in held:
            if linked and group not in held[grouping]:
                held[grouping].append(group)
            elif not linked and group in held[grouping]:
                held[grouping].remove(group)
    out = {}
    for gid, key in keys.items():
        name, idnumber = withheld.grouping_rows.get(gid, (key[1], key[2]))
        out[(gid, name, idnumber, key[3])] = held[gid]
    return out
