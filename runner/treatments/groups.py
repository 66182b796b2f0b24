"""clean_empty_groups: delete the groups left without members in the processed courses."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from runner.core import faults
from runner.core.text import plural
from runner.step.protocol import Action, Done, Plan

if TYPE_CHECKING:
    from runner.step.facts import RunFacts
    from runner.step.ledger import GroupDeletions
    from runner.step.preview import Withheld
    from runner.step.scope import StepScope
    from runner.step.services import Database

#: the sync commands whose files make courses "processed"
ENROLMENT_COMMANDS = frozenset({"enrolments", "group_members"})
#: enrol plugins whose instances fill a group of the course (enrol.customint2: the
#: group's id), as Moodle's cohort and meta-link syncs do
FILLING_PLUGINS = ("cohort", "meta")
CHUNK = 2000


@dataclass(frozen=True)
class GroupsConfig:
    groupings: bool
    all_courses: bool
    max_deletions: int | None


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    it = iter(ids)
    while chunk := list(islice(it, CHUNK)):
        yield chunk


def _label(name: str, course: str) -> str:
    return f'"{name}" in course {course}'


def _grouping_alive(t: Any) -> Any:
    """A grouping holds a group that has members (it survives the cleanup)."""
    from sqlalchemy import exists

    g, gg = t.groups, t.groupings_groups
    member = exists().where(t.groups_members.c.groupid == g.c.id)
    return (
        exists()
        .where(gg.c.groupingid == t.groupings.c.id)
        .where(gg.c.groupid == g.c.id)
        .where(member)
    )


def _release_modules(conn: Any, t: Any, groupings: list[int], now: int) -> None:
    """The activities restricted to deleted groupings are restricted no more (Moodle's
    groups_delete_grouping), and their courses' cache revision moves on, as Moodle's
    increment_revision_number does, so that the course's cached activity list (which
    holds each activity's grouping) is rebuilt."""
    from sqlalchemy import select, update

    from runner.db.revisions import move_course_revisions

    cm = t.course_modules
    courses = sorted(
        conn.execute(select(cm.c.course).where(cm.c.groupingid.in_(groupings)).distinct())
        .scalars()
        .all()
    )
    if not courses:
        return
    conn.execute(update(cm).where(cm.c.groupingid.in_(groupings)).values(groupingid=0))
    move_course_revisions(conn, t, courses, now)


class CleanEmptyGroups:
    """Delete the groups that have no members in the courses the run processed.

    The processed courses are those that a line of an enrolments or group_members file
    touched (a failed line touches nothing, unless a part of it was applied). As
    Moodle's groups_delete_group does, the group's grouping links and its calendar
    events go with it. An empty group is kept, and the step's detail says why, when an
    enrol instance fills it (a cohort or meta-link sync's group), when it has a
    picture or files in its description (only Moodle can delete those files), or when
    a groups file of the run names it (the feed declares it, members or not). All
    deletions happen in one transaction.

    Parameters:
      groupings (boolean, default false): also delete the groupings of those courses
        that are left with no group; as Moodle's groups_delete_grouping does, a course
        whose default grouping it was has none, and activities restricted to it are
        restricted no more (their course's cache revision moves on).
      courses (processed | all, default processed): `all` looks at every course of the
        site, whatever the run did; use it knowingly.
      max_deletions (integer >= 0, or a template rendering to one; optional): when more
        groups would go, the step fails and deletes nothing (a safety net against a
        truncated feed).

    Example:
      - clean_empty_groups:
          groupings: true
          max_deletions: 200

    Guarantees: a group with members is never deleted, nor a group in a course the run
    did not touch (unless `courses: all`); skipped when no enrolments or group_members
    file was processed; a group that gained a member since the plan is kept; the
    preview sees what the sync would have done and lists exactly the groups the run
    deletes. Moodle keeps a course's groups in its cache: a purge_moodle_caches step
    after this one makes the deletions visible to a live site.
    """

    def configure(self, params: Mapping[str, Any], scope: StepScope) -> GroupsConfig:
        return GroupsConfig(
            groupings=bool(params.get("groupings", False)),
            all_courses=params.get("courses", "processed") == "all",
            max_deletions=scope.optional_integer(params.get("max_deletions"), "max_deletions", 0),
        )

    def _empty(
        self, config: GroupsConfig, ledger: GroupDeletions, db: Database, courses: list[int]
    ) -> tuple[list[Any], list[Any], list[Any]]:
        """The empty groups to delete, and the groupings left with no group that has
        members, as (id, name, idnumber, course shortname); the empty groups kept, with
        the reason after those.

        A group is empty when it has no member after the sync: the database's members,
        with the changes a preview's sync kept instead of writing counted in
        (runner.step.preview; none in a real run), so a preview finds the groups its
        sync would have emptied: those the database has empty and the sync added no one
        to, those whose every member the sync removed, those the sync created and left
        empty.
        """
        from sqlalchemy import exists, func, select

        _engine, t = db.database()
        g, c, m, gr, gg = t.groups, t.course, t.groups_members, t.groupings, t.groupings_groups
        withheld = ledger.withheld
        changes = withheld.member_changes() if withheld is not None else Counter()
        label = select(g.c.id, g.c.name, g.c.idnumber, c.c.shortname).join(
            c, c.c.id == g.c.courseid
        )
        no_member = ~exists().where(m.c.groupid == g.c.id)
        losing = sorted(gid for gid, change in changes.items() if change < 0 and gid > 0)
        grouping_query = (
            select(gr.c.id, gr.c.name, gr.c.idnumber, c.c.shortname, gg.c.groupid)
            .join(c, c.c.id == gr.c.courseid)
            .outerjoin(gg, gg.c.groupingid == gr.c.id)
        )
        empty: list[Any] = []
        links: dict[tuple[Any, ...], list[int]] = {}  # grouping -> its groups
        scopes = [None] if config.all_courses else list(_chunks(courses))
        with db.transaction() as unit:
            conn = unit.conn
            for chunk in scopes:
                where = [] if chunk is None else [g.c.courseid.in_(chunk)]
                for row in conn.execute(label.where(no_member, *where)):
                    if changes[row[0]] <= 0:  # nobody added by a preview's sync
                        empty.append(tuple(row))
                if config.groupings:
                    where = [] if chunk is None else [gr.c.courseid.in_(chunk)]
                    for gid, name, idnumber, course, member in conn.execute(
                        grouping_query.where(*where)
                    ):
                        held = links.setdefault((gid, name, idnumber, course), [])
                        if member is not None:
                            held.append(member)
            scope = None if config.all_courses else set(courses)
            for part in _chunks(losing):  # a preview: groups its sync took members from
                counted = (
                    select(
                        g.c.id, g.c.name, g.c.idnumber, c.c.shortname, g.c.courseid, func.count()
                    )
                    .join(c, c.c.id == g.c.courseid)
                    .join(m, m.c.groupid == g.c.id)
                    .where(g.c.id.in_(part))
                    .group_by(g.c.id, g.c.name, g.c.idnumber, c.c.shortname, g.c.courseid)
                )
                for gid, name, idnumber, course, courseid, count in conn.execute(counted):
                    if count + changes[gid] <= 0 and (scope is None or courseid in scope):
                        empty.append((gid, name, idnumber, course))
            if withheld is not None:  # groups a preview's sync would have made
                created = withheld.created_groups(scope)
                made = [
                    (gid, name, idnumber, course)
                    for course, rows in withheld.groupings.items()
                    if config.groupings and (scope is None or course in scope)
                    for gid, name, idnumber in rows
                ]
                wanted = {course for _, course, _ in created} | {row[3] for row in made}
                names = dict(
                    conn.execute(select(c.c.id, c.c.shortname).where(c.c.id.in_(wanted))).all()
                )
                empty += [
                    (gid, name, "", names[course])
                    for gid, course, name in created
                    if changes[gid] <= 0
                ]
                links = _previewed_groupings(withheld, links, made, names)
                # names and idnumbers as the preview's groups files left them
                empty = [
                    (gid, *withheld.group_rows.get(gid, (name, idnumber)), course)
                    for gid, name, idnumber, course in empty
                ]
            reasons = self._kept(conn, t, [row[0] for row in empty])
            for f in ledger.files:
                if f.command == "groups" and not f.error:
                    for gid in f.groups:
                        reasons.setdefault(gid, f"{f.path.name} declares it")
            # groups files a killed run applied and post-treated before it died
            for gid, name in ledger.recovery.declared_groups().items():
                reasons.setdefault(gid, f"{name} declares it")
        kept = [(*row, reasons[row[0]]) for row in empty if row[0] in reasons]
        empty = [row for row in empty if row[0] not in reasons]
        gone = {row[0] for row in empty}
        # a grouping is left when none of its groups keeps a member
        left = [key for key, held in links.items() if all(x in gone for x in held)]
        return empty, left, kept

    def _kept(self, conn: Any, t: Any, ids: list[int]) -> dict[int, str]:
        """Empty groups that stay, and why: a group an enrol instance fills (cohort
        sync's group, emptied for now: the sync refills it), a group with a picture or
        files in its description (Moodle's own deletion removes those files from
        moodledata; postsync cannot)."""
        from sqlalchemy import or_, select

        e, g = t.enrol, t.groups
        kept: dict[int, str] = {}
        for part in _chunks([gid for gid in ids if gid > 0]):
            rows = conn.execute(
                select(e.c.customint2, e.c.enrol).where(
                    e.c.enrol.in_(FILLING_PLUGINS), e.c.customint2.in_(part)
                )
            )
            for gid, plugin in rows:
                kept[gid] = f"the {plugin} enrolment instance of the course fills it"
            rows = conn.execute(
                select(g.c.id).where(
                    g.c.id.in_(part),
                    or_(g.c.picture != 0, g.c.description.like("%@@PLUGINFILE@@%")),
                )
            )
            for (gid,) in rows:
                kept.setdefault(gid, "it has a picture or files, which only Moodle deletes")
        return kept

    def plan(
        self, config: GroupsConfig, run: RunFacts, ledger: GroupDeletions, services: Database
    ) -> Plan:
        files = [f for f in ledger.files if f.command in ENROLMENT_COMMANDS and not f.error]
        if not config.all_courses and not files:
            return Plan(skip_reason="no enrolments or group_members file was processed")
        courses = sorted({course for f in files for course in f.courses})
        if not config.all_courses and not courses:
            return Plan(summary="no course was touched")
        groups, groupings, kept = self._empty(config, ledger, services, courses)
        scope = "site" if config.all_courses else plural(len(courses), "processed course")
        if config.max_deletions is not None and len(groups) > config.max_deletions:
            return Plan(
                summary=f"{plural(len(groups), 'empty group')} in the {scope}",
                errors=[
                    f"{len(groups)} empty groups would be deleted, more than max_deletions"
                    f" ({config.max_deletions}); nothing deleted"
                ],
            )
        actions = [
            Action(
                "delete_group",
                _label(name, course),
                f"idnumber {idnumber}" if idnumber else "",
                data=("group", gid),
            )
            for gid, name, idnumber, course in sorted(groups, key=lambda r: (r[3], r[1], r[0]))
        ]
        actions += [
            Action(
                "delete_grouping",
                _label(name, course),
                f"idnumber {idnumber}" if idnumber else "",
                data=("grouping", gid),
            )
            for gid, name, idnumber, course in sorted(groupings, key=lambda r: (r[3], r[1], r[0]))
        ]
        if run.check:
            ledger.count_groups_deleted(len(actions))
        found = plural(len(groups), "empty group") if groups else "no empty group"
        summary = f"{found} in the {scope}"
        if groupings:
            summary += f", {plural(len(groupings), 'grouping')} left with no group"
        if kept:
            shown = "; ".join(
                f"{_label(name, course)} ({reason})"
                for _gid, name, _idnumber, course, reason in sorted(
                    kept, key=lambda r: (r[3], r[1])
                )[:3]
            )
            more = f" and {len(kept) - 3} more" if len(kept) > 3 else ""
            summary += f"; kept {plural(len(kept), 'empty group')}: {shown}{more}"
        return Plan(actions, summary)

    def apply(
        self,
        actions: Sequence[Action],
        run: RunFacts,
        ledger: GroupDeletions,
        services: Database,
    ) -> Iterator[Done]:
        from sqlalchemy import select, update

        from runner.db.raw import Raw

        _engine, t = services.database()
        g, gg, gr = t.groups, t.groupings_groups, t.groupings
        group_ids = [a.data[1] for a in actions if a.data[0] == "group"]
        grouping_ids = [a.data[1] for a in actions if a.data[0] == "grouping"]
        deleted: set[tuple[str, int]] = set()
        with services.transaction() as unit:
            conn = unit.conn
            raw = Raw(conn)
            q = raw.quote
            for chunk in _chunks(group_ids):
                # re-checked inside the transaction: a group that gained a member stays
                listed, params = raw.where_in(g, "id", chunk)
                sql = (
                    f"SELECT g.{q('id')} FROM {raw.name(g)} g WHERE g.{listed}"
                    f" AND NOT EXISTS (SELECT 1 FROM {raw.name(t.groups_members)} m"
                    f" WHERE m.{q('groupid')} = g.{q('id')})"
                )
                still = [r[0] for r in conn.exec_driver_sql(sql, params).fetchall()]
                raw.delete_ids(t.event, still, "groupid")  # the group's calendar events
                raw.delete_ids(gg, still, "groupid")
                raw.delete_ids(g, still)
                deleted.update(("group", i) for i in still)
            alive = _grouping_alive(t)
            for chunk in _chunks(grouping_ids):
                still = [
                    r[0] for r in conn.execute(select(gr.c.id).where(gr.c.id.in_(chunk), ~alive))
                ]
                if still:
                    conn.execute(
                        update(t.course)
                        .where(t.course.c.defaultgroupingid.in_(still))
                        .values(defaultgroupingid=0)
                    )
                    _release_modules(conn, t, still, int(run.now.timestamp()))
                    conn.execute(gg.delete().where(gg.c.groupingid.in_(still)))
                    conn.execute(gr.delete().where(gr.c.id.in_(still)))
                deleted.update(("grouping", i) for i in still)
            faults.point("groups.commit")
        ledger.count_groups_deleted(len(deleted))
        for action in actions:
            kept = action.data not in deleted
            yield Done(action, "kept: it has members now" if kept else "")


def _previewed_groupings(
    withheld: Withheld,
    links: dict[tuple[Any, ...], list[int]],
    made: list[tuple[int, str, str, int]],
    courses: dict[int, str],
) -> dict[tuple[Any, ...], list[int]]:
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
