"""The cohorts and users of the undo (runner.undo.lines): cohorts the run deleted made
again (their members and description are not journaled), members given back or
removed, cohorts it created deleted; users it created suspended, never deleted (a
deletion cannot be undone), the columns it updated restored (never a password)."""

from __future__ import annotations

from typing import Any

from runner.sync.commands import SYNC_COMMANDS
from runner.undo.lines import CATEGORY_CONTEXT, Written
from runner.undo.plan import Plan
from runner.undo.site import Site


def _cohort_name(row: dict[str, Any]) -> tuple[str, str] | None:
    idnumber = row.get("idnumber") or ""
    return (str(idnumber), str(row.get("name") or "")) if idnumber else None


def cohorts(plan: Plan, site: Site, out: Written) -> None:
    for change in plan.cohorts_deleted.values():
        f, origin = change.fields, change.origin
        named = _cohort_name(f)
        if named is None:
            out.note(
                origin,
                f"cohort {f.get('name')!r} deleted: it had no idnumber, by which the written "
                "cohorts file names cohorts: not re-created",
            )
            continue
        level, instance = site.contexts.get(int(f["contextid"]), (0, 0))
        category = instance if level == CATEGORY_CONTEXT else ""
        out.add(
            "cohorts",
            origin,
            cmd="add",
            cidnumber=named[0],
            cname=named[1],
            userid="",
            ccatcontext=category,
        )
        out.note(
            origin,
            f"cohort {named[0]} re-created: its description and its members (deleted with it) "
            "are not journaled: not given back",
        )
    for (cohortid, userid), net in plan.cohort_members.items():
        if net.before == net.after or (not net.before and cohortid in plan.cohorts_created):
            continue  # a cohort the run made goes with its members
        row, user = site.cohorts.get(cohortid), site.user(userid)
        named = _cohort_name(row) if row else None
        if named is None or user is None:
            why = "the user is gone" if user is None else "the cohort is gone or has no idnumber"
            out.note(net.origin, f"cohort {cohortid} member {userid}: {why}: not reversed")
            continue
        out.add(
            "cohorts",
            net.origin,
            cmd="add" if net.before else "del",
            cidnumber=named[0],
            cname=named[1],
            userid=user,
            ccatcontext="",
        )
    for cohortid, change in plan.cohorts_created.items():
        row = site.cohorts.get(cohortid)
        named = _cohort_name(row) if row else None
        if named is None or (row and row.get("component")):
            out.note(
                change.origin,
                f"cohort {change.fields.get('name')!r} created: gone since, without an "
                "idnumber, or another plugin's: not deleted",
            )
            continue
        out.add(
            "cohorts",
            change.origin,
            cmd="del",
            cidnumber=named[0],
            cname=named[1],
            userid="",
            ccatcontext="",
        )


#: the users format's columns an update may be restored through (never a password)
RESTORABLE = frozenset(SYNC_COMMANDS["users"].columns.known) - {"password", "deleted"}
REQUIRED = SYNC_COMMANDS["users"].columns.required


def users(plan: Plan, site: Site, out: Written) -> None:
    for change in plan.users_created:
        name = change.fields["user"]["username"]
        row = site.usernames.get(name)
        if row is None or row["deleted"]:
            out.note(change.origin, f"user {name} created: gone or deleted since: nothing to do")
            continue
        values = {c: row[c] for c in ("auth", *REQUIRED)}
        out.add("users", change.origin, **values, suspended=1)
        out.note(
            change.origin,
            f"user {name} created: suspended, not deleted (a deletion cannot be undone; delete "
            "them in Moodle once sure)",
        )
    for userid, net in plan.users_updated.items():
        row = site.users.get(userid)
        before = {k: v for k, v in net.before.items() if k in RESTORABLE}
        left = sorted(set(net.before) - set(before) - {"password"})
        if left:
            out.note(
                net.origin,
                f"user {userid}: {', '.join(left)} changed: not a column of the users format: "
                "not restored",
            )
        if row is None or row["deleted"] or not before:
            if row is None or row["deleted"]:
                out.note(net.origin, f"user {userid} updated: deleted since: not restored")
            continue
        if "idnumber" in before or not row["idnumber"]:
            out.note(
                net.origin,
                f"user {row['username']} updated: the written users file names users by "
                "idnumber, which "
                f"{'the run changed' if 'idnumber' in before else 'this user has not'}: not "
                "restored",
            )
            continue
        values = {c: row[c] for c in ("auth", *REQUIRED, "idnumber")}
        out.add("users_restored", net.origin, **{**values, **before})
