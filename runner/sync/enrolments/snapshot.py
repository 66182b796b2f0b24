"""enrolments in `mode: snapshot`: the file is the whole truth for the enrolments of
the step's enrol plugin (`enrol`, manual by default) in its scope's courses: the courses
its lines name (`named`), every course with an instance of the plugin (`instances`),
the courses whose idnumber matches a pattern (`{idnumber: GLOB}`), or those of a
category and its subcategories (`{category: ID or idnumber}`). An enrolment of the
plugin in a scope course whose user no line lists is acted on as `missing` says, as
Moodle's own API would: `unenrol` (unenrol_user: the instance's memberships and roles,
and at the user's last enrolment in the course every role and membership there),
`suspend` (the enrolment's status), `suspend_and_remove_roles` (and the roles the
plugin's enrol_user gives), `keep`. Never another plugin's enrolment (manual, cohort,
meta... when the step's plugin is another)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select

from runner.core.text import excerpt, number
from runner.sync.base import Course, LineResult, SyncOptions
from runner.sync.enrolments.roles import role_key
from runner.sync.snapshot import Listed, missed
from runner.sync.writes import chunks

if TYPE_CHECKING:
    from runner.sync.state import SiteState

#: the scope's courses acted on at a time
COURSES = 200
CONTEXT_COURSE = 50


def scope_courses(state: SiteState, scope: Any, plugin: str) -> list[int]:
    """The ids of the courses the snapshot is the truth for."""
    t, conn = state.t, state.raw.conn
    listed = state.part(Listed)
    if scope in (None, "named"):
        return listed.named_scopes()
    c = t.course.c
    found: set[int] = set()
    if scope == "instances":
        e = t.enrol.c
        found = {int(i) for (i,) in conn.execute(select(e.courseid).where(e.enrol == plugin))}
        if state.withheld is not None:  # instances the preview made
            made = state.withheld.instances.items()
            found |= {cid for cid, rows in made if any(row[2] == plugin for row in rows)}
    elif "idnumber" in scope:
        rows = conn.execute(select(c.id, c.idnumber).where(c.category != 0))
        found = {int(i) for i, idn in rows if fnmatch.fnmatchcase(idn or "", scope["idnumber"])}
    else:
        k = t.course_categories.c
        key = str(scope["category"])
        top = number(key)
        where = k.idnumber == key if top is None else or_(k.id == top, k.idnumber == key)
        tops = [int(i) for (i,) in conn.execute(select(k.id).where(where))]
        cats = set(tops)
        for top in tops:
            below = conn.execute(select(k.id).where(k.path.like(f"%/{top}/%")))
            cats |= {int(i) for (i,) in below}
        for part in chunks(sorted(cats)):
            held = conn.execute(select(c.id).where(c.category.in_(part)))
            found |= {int(i) for (i,) in held}
    return listed.scopes(sorted(found))


def _courses(state: SiteState, ids: Sequence[int], key: str) -> dict[int, Course]:
    c, x = state.t.course.c, state.t.context.c
    rows = state.raw.conn.execute(
        select(c.id, x.id, c[key])
        .join_from(state.t.course, state.t.context, x.instanceid == c.id)
        .where(x.contextlevel == CONTEXT_COURSE, c.id.in_(ids))
    )
    return {int(i): Course(int(i), int(ctx), str(k)) for i, ctx, k in rows}


def unlisted(state: SiteState, options: SyncOptions, plugin: str) -> Iterator[list[LineResult]]:
    """The scope's enrolments of `plugin` whose users no line lists, acted on."""
    snapshot = options.snapshot
    assert snapshot is not None
    if snapshot.missing == "keep":
        return
    listed = state.part(Listed)
    ue = state.t.user_enrolments.c
    for part in chunks(scope_courses(state, snapshot.scope, plugin), COURSES):
        state.writes.wait()
        courses = _courses(state, part, options.course_key)
        state.lookups.load_courses(part)
        instances = {
            eid: cid
            for cid in part
            for _order, eid, name, _status in state.lookups.enrols.get(cid, ())
            if name == plugin
        }
        candidates: set[tuple[int, int, int]] = set()
        for ids in chunks(sorted(i for i in instances if i > 0)):
            rows = state.raw.conn.execute(select(ue.enrolid, ue.userid).where(ue.enrolid.in_(ids)))
            for eid, uid in rows:
                cid, user = instances[int(eid)], int(uid)
                absent = cid in courses and user not in listed.users.get(cid, ())
                if absent and (listed.only is None or listed.may_act(cid, user)):
                    candidates.add((cid, courses[cid].context_id, user))
        if state.withheld is not None:  # enrolments an earlier file of the preview made
            for cid, ctx, uid in state.withheld.pairs:
                absent = uid not in listed.users.get(cid, ())
                if cid in courses and absent and listed.may_act(cid, uid):
                    candidates.add((cid, ctx, uid))
        state.prepare_pairs(candidates, leaving=snapshot.missing == "unenrol")
        names = state.lookups.user_names(sorted({uid for _, _, uid in candidates}))
        results = []
        for cid, _ctx, uid in sorted(candidates):
            course = courses[cid]
            for eid in sorted(i for i, c in instances.items() if c == cid):
                if (eid, uid) in state.enrolments and _act(
                    state, snapshot.missing, course, eid, uid, plugin
                ):
                    who = excerpt(names.get(uid, str(uid)))
                    summary = f"{snapshot.missing} {who} in {excerpt(course.key)} ({plugin})"
                    results.append(missed(summary, course))
        yield results


def _act(state: SiteState, action: str, course: Course, eid: int, uid: int, plugin: str) -> bool:
    """One enrolment acted on as Moodle's API would; whether anything changed."""
    component = role_key(0, plugin, eid)[1:]  # the roles the plugin's enrol_user gives
    if action == "unenrol":  # as unenrol_user
        for gid in state.members_of_instance(course, uid, plugin, eid):
            state.remove_member(course, uid, gid)
        for role in [r for r in state.roles_in(course, uid) if r[1:] == component and r[1]]:
            state.unassign(course, uid, role)
        state.remove_enrolment(course, eid, uid)
        if not state.enrolled(course, uid):  # the last: every role and group there
            for role in list(state.roles_in(course, uid)):
                state.unassign(course, uid, role)
            for gid in list(state.groups_of(course, uid)):
                state.remove_member(course, uid, gid)
            state.leave(course, uid)
        return True
    changed = state.ensure_enrolment(course, eid, uid, None, None, status=1)
    if action == "suspend_and_remove_roles":
        for role in [r for r in state.roles_in(course, uid) if r[1:] == component]:
            changed |= state.unassign(course, uid, role)
    return changed
