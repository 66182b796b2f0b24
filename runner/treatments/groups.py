"""clean_empty_groups: delete the groups left without members in the processed courses."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from runner.core import faults
from runner.core.errors import PlaybookError, StepError
from runner.core.interpreter import uninterrupted
from runner.core.limits import limits
from runner.core.text import plural
from runner.record import journal
from runner.record.journal import Spool
from runner.step.protocol import Action, Done, Plan
from runner.treatments import groups_journal, groups_limit
from runner.treatments.groups_empty import scan
from runner.treatments.groups_rules import (
    GroupsConfig,
    Row,
    Why,
    chunks,
    filled_or_with_files,
    kept_summary,
    selected,
)

if TYPE_CHECKING:
    from pathlib import Path

    from runner.step.facts import RunFacts
    from runner.step.ledger import GroupDeletions
    from runner.step.scope import StepScope
    from runner.step.services import Database, SyncServices

#: the sync commands whose files make courses "processed"
ENROLMENT_COMMANDS = frozenset({"enrolments", "group_members"})
#: groups deleted per statement
CHUNK = 2000
#: what the step deletes (an action's data: (kind, id))
KINDS = ("group", "grouping")


def _label(name: str, course: str) -> str:
    return f'"{name}" in course {course}'


def _limit(params: Mapping[str, Any], scope: StepScope) -> tuple[int | str, str] | None:
    """max_changes' delete_group, or max_deletions (a template rendering to a count)."""
    try:
        found = limits(params, "max_deletions", "delete_group").get("delete_group")
    except ValueError as exc:
        raise PlaybookError([scope.error(str(exc), "max_deletions")]) from None
    if found is not None and found[1] == "max_deletions":
        return scope.integer(found[0], "max_deletions", 0), "max_deletions"
    return found


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
    """Delete the empty groups a feed made in the courses the run processed.

    The processed courses are those that a line of an enrolments or group_members file
    touched (a failed line touches nothing, unless a part of it was applied). By
    default only the groups a feed made go: those a groups file or an enrolments line
    (gaddcreate, greplacecreate) created, or that a groups file named, in this run or
    an earlier one, as postsync recorded them in its own table (postsync_groups, with
    each file's changes); a group a teacher made in Moodle stays, empty or not. As
    Moodle's groups_delete_group does, the group's grouping links and its calendar
    events go with it. An empty group is kept, and the step's detail says why, when an
    enrol instance fills it (a cohort or meta-link sync's group), when it has a
    picture or files in its description (only Moodle can delete those files), when a
    groups file of the run names it (the feed declares it, members or not), when no
    feed made it (`groups`), when `exclude` matches it, or when it is younger than
    `min_age_days`. All deletions happen in one transaction; each is told to the
    run's change journal in a part of its own (RUN_ID/NNN_clean_empty_groups.journal):
    the row as it was and its grouping links, a group's enrolment key never.

    Parameters:
      groups (feed | with_idnumber | all_empty, default feed): which empty groups may
        go: those a feed made (feed); those and every group with an idnumber
        (with_idnumber: groups an earlier feed made before postsync recorded them,
        tool_sync's for one); every empty group of the courses, teachers' included
        (all_empty: tool_sync's cleanup; use it knowingly).
      exclude (list of globs, default []): a group whose name or idnumber matches one
        (`*`, `?`, `[...]`; case ignored) is kept, e.g. "Projet*", "*-KEEP".
      min_age_days (integer >= 0, or a template rendering to one; default 0): a group
        created (groups.timecreated) less than this many days before the run is kept.
      groupings (boolean, default false): also delete the groupings of those courses
        that are left with no group, under the same rules (groups, exclude,
        min_age_days); as Moodle's groups_delete_grouping does, a course whose default
        grouping it was has none, and activities restricted to it are restricted no
        more (their course's cache revision moves on).
      courses (processed | all, default processed): `all` looks at every course of the
        site, whatever the run did; use it knowingly.
      max_changes ({delete_group: a count, or a share like '20%'}; optional): when
        more groups would go, or more than that share of a course's groups, the step
        fails and deletes nothing (a safety net against a truncated feed).
      max_deletions (integer >= 0, or a template rendering to one; optional): the count
        of max_changes' delete_group, by its older name (give one of them).

    Example:
      - clean_empty_groups:
          groupings: true
          exclude: ["Projet*"]
          min_age_days: 7
          max_changes: {delete_group: 200}

    Guarantees: a group with members is never deleted, nor a group no feed made
    (unless `groups` says otherwise), nor a group in a course the run did not touch
    (unless `courses: all`); skipped when no enrolments or group_members file was
    processed; a group that gained a member since the plan is kept; the preview sees
    what the sync would have done and lists exactly the groups the run deletes, and
    the empty groups it keeps with why (the first ten named, the others counted).
    Moodle keeps a course's groups in its cache: a purge_moodle_caches step after
    this one makes the deletions visible to a live site.
    """

    def configure(self, params: Mapping[str, Any], scope: StepScope) -> GroupsConfig:
        exclude = params.get("exclude", [])
        return GroupsConfig(
            groupings=bool(params.get("groupings", False)),
            all_courses=params.get("courses", "processed") == "all",
            max_deletions=_limit(params, scope),
            groups=params.get("groups", "feed"),
            exclude=tuple(str(scope.render(p, "exclude", i)) for i, p in enumerate(exclude)),
            min_age_days=scope.integer(params.get("min_age_days", 0), "min_age_days", 0),
        )

    def _decide(
        self,
        config: GroupsConfig,
        run: RunFacts,
        ledger: GroupDeletions,
        db: Database,
        courses: list[int],
    ) -> tuple[list[Row], list[Row], list[tuple[Row, Why]], list[tuple[Row, Why]]]:
        """The empty groups to delete and the groupings left with no group that has
        members (runner.treatments.groups_empty); the empty groups and the groupings
        kept, each with why (runner.treatments.groups_rules)."""
        from runner.db import feed_groups

        engine, t = db.database()
        withheld = ledger.withheld
        now = int(run.now.timestamp())
        # who made a group matters unless every empty group may go
        problem = feed_groups.unreadable(engine) if config.groups != "all_empty" else None
        if problem is not None:
            if not run.check:
                raise StepError(f"cannot read postsync's table {feed_groups.TABLE}: {problem}")
            print(
                f"postsync: warning: the preview cannot read {feed_groups.TABLE} ({problem}):"
                " it counts no group as made by a feed, so it keeps them (the run may delete"
                f" some); grant SELECT on {feed_groups.TABLE} to this user",
                file=sys.stderr,
                flush=True,
            )
        readable = problem is None
        with db.transaction() as unit:
            conn = unit.conn
            empty, links = scan(conn, t, config, withheld, courses)
            reasons = filled_or_with_files(conn, t, [row[0] for row in empty])
            declared: dict[int, str] = {}
            for f in ledger.files:
                if f.command == "groups" and not f.error:
                    for gid in f.groups:
                        declared.setdefault(gid, f.path.name)
            # groups files a killed run applied and post-treated before it died
            for gid, name in ledger.recovery.declared_groups().items():
                declared.setdefault(gid, name)
            for gid, name in declared.items():
                reasons.setdefault(gid, Why(f"{name} declares it", "declared by a groups file"))
            rest = [row for row in empty if row[0] not in reasons]
            reasons.update(selected(conn, t, config, "groups", rest, now, withheld, readable))
            kept = [(row, reasons[row[0]]) for row in empty if row[0] in reasons]
            groups = [row for row in empty if row[0] not in reasons]
            gone = {row[0] for row in groups}
            # a grouping is left when none of its groups keeps a member
            left = [key for key, held in links.items() if all(x in gone for x in held)]
            spared = selected(conn, t, config, "groupings", left, now, withheld, readable)
        kept_groupings = [(row, spared[row[0]]) for row in left if row[0] in spared]
        groupings = [row for row in left if row[0] not in spared]
        return groups, groupings, kept, kept_groupings

    def plan(
        self, config: GroupsConfig, run: RunFacts, ledger: GroupDeletions, services: SyncServices
    ) -> Plan:
        files = [f for f in ledger.files if f.command in ENROLMENT_COMMANDS and not f.error]
        if not config.all_courses and not files:
            return Plan(skip_reason="no enrolments or group_members file was processed")
        courses = sorted({course for f in files for course in f.courses})
        if not config.all_courses and not courses:
            return Plan(summary="no course was touched")
        groups, groupings, kept, kept_groupings = self._decide(
            config, run, ledger, services, courses
        )
        scope = "site" if config.all_courses else plural(len(courses), "processed course")
        engine, t = services.database()
        with engine.connect() as conn:
            refused = groups_limit.refusal(config.max_deletions, groups, conn, t, ledger.withheld)
        if refused is not None:
            return Plan(
                summary=f"{plural(len(groups), 'empty group')} in the {scope}", errors=[refused]
            )
        actions = [
            Action(
                f"delete_{kind}",
                _label(name, course),
                f"idnumber {idnumber}" if idnumber else "",
                data=(kind, gid),
            )
            for kind, rows in (("group", groups), ("grouping", groupings))
            for gid, name, idnumber, course in sorted(rows, key=itemgetter(3, 1, 0))
        ]
        if run.check:
            ledger.count_groups_deleted(len(actions))
        if actions and (run.check or run.diff):
            actions = self._journal(actions, run, services)
        found = plural(len(groups), "empty group") if groups else "no empty group to delete"
        summary = f"{found} in the {scope}"
        if groupings:
            summary += f", {plural(len(groupings), 'grouping')} left with no group"
        if kept:
            summary += "; " + kept_summary("empty group", kept)
        if kept_groupings:
            summary += "; " + kept_summary("grouping left with no group", kept_groupings)
        return Plan(actions, summary)

    def _journal(
        self, actions: list[Action], run: RunFacts, services: SyncServices
    ) -> list[Action]:
        """The preview's part of the journal: the lines the run writes (runner.treatments.
        groups_journal), from the rows as the plan found them; with --diff, each action
        shows its line (a run's too: its part is written as it deletes)."""
        _engine, t = services.database()
        where = services.journal_part(groups_journal.STEP) if run.check else None
        ids = {kind: [a.data[1] for a in actions if a.data[0] == kind] for kind in KINDS}
        with groups_journal.part(run, where) as out, services.transaction() as unit:
            texts = groups_journal.tell(out, actions, groups_journal.read(unit.conn, t, ids))
            journal.publish(out)
        return groups_journal.shown(actions, texts) if run.diff else actions

    def apply(
        self,
        actions: Sequence[Action],
        run: RunFacts,
        ledger: GroupDeletions,
        services: SyncServices,
    ) -> Iterator[Done]:
        where = services.journal_part(groups_journal.STEP)
        with groups_journal.part(run, where) as out:
            deleted = self._delete(actions, run, services, (out, where))
        ledger.count_groups_deleted(len(deleted))
        for action in actions:
            kept = action.data not in deleted
            yield Done(action, "kept: it has members now" if kept else "")

    def _delete(
        self,
        actions: Sequence[Action],
        run: RunFacts,
        services: Database,
        part: tuple[Spool, Path],
    ) -> set[tuple[str, int]]:
        """Delete the groups and groupings of `actions` that are still empty, in one
        transaction; their journal lines published before it commits (`part`: the lines
        and where), withdrawn unless it did."""
        _engine, t = services.database()
        faults.point("groups.delete")  # planned, nothing deleted yet
        out, where = part
        committed = False
        try:
            with services.transaction() as unit:
                found = _delete_rows(unit.conn, t, actions, int(run.now.timestamp()))
                groups_journal.tell(out, actions, found)
                journal.publish(out)
                faults.point("groups.commit")
                with uninterrupted():  # deletions committed never lose their lines
                    unit.commit()
                    faults.point("groups.committed")
                    committed = True
        except BaseException:
            if not committed:
                groups_journal.withdraw(out, where)
            raise
        return set(found)


def _delete_rows(conn: Any, t: Any, actions: Sequence[Action], now: int) -> groups_journal.Found:
    """The groups and groupings of `actions` still empty deleted, with what goes with
    them: their rows as they were (for the journal), keyed as the actions' data."""
    from sqlalchemy import select, update

    from runner.db import feed_groups
    from runner.db.raw import Raw

    g, gg, gr = t.groups, t.groupings_groups, t.groupings
    group_ids = [a.data[1] for a in actions if a.data[0] == "group"]
    grouping_ids = [a.data[1] for a in actions if a.data[0] == "grouping"]
    raw = Raw(conn)
    # re-checked inside the transaction: a group that gained a member stays; the rows
    # of those still empty read for the journal in the same query
    found = groups_journal.read(conn, t, {"group": group_ids}, empty=True)
    for still in chunks([gid for _kind, gid in found], CHUNK):
        raw.delete_ids(t.event, still, "groupid")  # the group's calendar events
        raw.delete_ids(gg, still, "groupid")
        raw.delete_ids(g, still)
        feed_groups.forget(conn, "groups", still)
    alive = _grouping_alive(t)
    left = [
        row[0]
        for chunk in chunks(grouping_ids, CHUNK)
        for row in conn.execute(select(gr.c.id).where(gr.c.id.in_(chunk), ~alive))
    ]
    found.update(groups_journal.read(conn, t, {"grouping": left}))
    for still in chunks(left, CHUNK):
        conn.execute(
            update(t.course)
            .where(t.course.c.defaultgroupingid.in_(still))
            .values(defaultgroupingid=0)
        )
        _release_modules(conn, t, still, now)
        conn.execute(gg.delete().where(gg.c.groupingid.in_(still)))
        conn.execute(gr.delete().where(gr.c.id.in_(still)))
        feed_groups.forget(conn, "groupings", still)
    return found
