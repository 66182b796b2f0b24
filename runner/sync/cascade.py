"""What a deletion takes with it, told to the run's change journal (runner.sync.journal)
at the deleting line, before the deletion itself, each line saying which deletion it
went `with`: a user's enrolments, role assignments (every context), group and cohort
memberships, as Moodle's delete_user and postsync's users deletion remove them; a
cohort's members, as cohort_delete_cohort removes them.

A user's are read when the line is simulated, from the database as the file's earlier
batches left it (the writer is waited for first): a user the run created has none
there; a preview does not see the rows an earlier file of the same preview would have
written (it reads the database as it is). A cohort's are its members as the batch
sees them, in a preview too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from runner.sync.journal import text

if TYPE_CHECKING:
    from runner.sync.journal import FileJournal
    from runner.sync.state import SiteState

CONTEXT_COURSE = 50


def user_deleted(site: SiteState, userid: int | None) -> None:
    """Tell what deleting user `userid` takes with it (nothing for a user the run made)."""
    if userid is None or userid <= 0 or site.journal.spool is None:
        return
    site.writes.wait()  # the connection is the writer's until its batch is written
    conn, t, out = site.raw.conn, site.t, site.journal
    ue, e = t.user_enrolments, t.enrol
    for enrolment in conn.execute(
        select(ue.c.id, ue.c.enrolid, e.c.courseid, ue.c.status, ue.c.timestart, ue.c.timeend)
        .join(e, e.c.id == ue.c.enrolid)
        .where(ue.c.userid == userid)
        .order_by(e.c.courseid, ue.c.enrolid)
    ):
        out.taken(
            "user_enrolment_deleted",
            int(enrolment.courseid),
            f'"id":{enrolment.id},"enrolid":{enrolment.enrolid},"userid":{userid},'
            f'"status":{enrolment.status},"timestart":{enrolment.timestart},'
            f'"timeend":{enrolment.timeend}',
            "user_deleted",
        )
    ra, ctx = t.role_assignments, t.context
    for role in conn.execute(
        select(
            ra.c.id,
            ra.c.contextid,
            ctx.c.contextlevel,
            ctx.c.instanceid,
            ra.c.roleid,
            ra.c.component,
            ra.c.itemid,
        )
        .outerjoin(ctx, ctx.c.id == ra.c.contextid)
        .where(ra.c.userid == userid)
        .order_by(ra.c.id)
    ):
        course = int(role.instanceid) if role.contextlevel == CONTEXT_COURSE else None
        out.taken(
            "role_unassigned",
            course,
            f'"id":{role.id},"contextid":{role.contextid},"userid":{userid},'
            f'"roleid":{role.roleid},"component":{text(role.component or "")},'
            f'"itemid":{role.itemid}',
            "user_deleted",
        )
    gm, g = t.groups_members, t.groups
    for member in conn.execute(
        select(gm.c.id, gm.c.groupid, g.c.courseid, gm.c.component, gm.c.itemid)
        .outerjoin(g, g.c.id == gm.c.groupid)
        .where(gm.c.userid == userid)
        .order_by(gm.c.id)
    ):
        out.taken(
            "group_member_removed",
            None if member.courseid is None else int(member.courseid),
            f'"id":{member.id},"groupid":{member.groupid},"userid":{userid},'
            f'"component":{text(member.component or "")},"itemid":{member.itemid}',
            "user_deleted",
        )
    cm = t.cohort_members
    for membership in conn.execute(
        select(cm.c.id, cm.c.cohortid).where(cm.c.userid == userid).order_by(cm.c.id)
    ):
        out.taken(
            "cohort_member_removed",
            None,
            f'"id":{membership.id},"cohortid":{membership.cohortid},"userid":{userid}',
            "user_deleted",
        )


def cohort_deleted(out: FileJournal, cohortid: int, members: list[tuple[int | None, int]]) -> None:
    """Tell the members (row id, user id) deleting cohort `cohortid` takes with it, as
    the batch sees them (the cohorts state loads a deleted cohort's members whole)."""
    for rid, userid in sorted(members, key=lambda m: (m[0] is None, m[0] or 0, m[1])):
        out.taken(
            "cohort_member_removed",
            None,
            f'"id":{"null" if rid is None else rid},"cohortid":{cohortid},"userid":{userid}',
            "cohort_deleted",
        )
