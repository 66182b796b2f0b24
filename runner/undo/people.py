"""The cohorts and users of the undo (runner.undo.lines): cohorts the run deleted made
again (their description is not journaled) and given back the members their deletion
took (journal lines `"with": "cohort_deleted"`), members given back or removed, cohorts
it created deleted, those it updated given back their values (named by id); users it
created suspended, never deleted (a deletion cannot be undone), the columns it updated
restored (never a password), the user named by idnumber, or by username when the run
changed the idnumber."""

from __future__ import annotations

from collections import Counter
from typing import Any

from runner.core.text import plural
from runner.sync.commands import SYNC_COMMANDS
from runner.undo.lines import CATEGORY_CONTEXT, Written
from runner.undo.plan import Net, Plan
from runner.undo.site import Site


def _cohort_name(row: dict[str, Any]) -> tuple[str, str] | None:
    idnumber = row.get("idnumber") or ""
    return (str(idnumber), str(row.get("name") or "")) if idnumber else None


def cohorts(plan: Plan, site: Site, out: Written) -> None:
    # the members each deleted cohort had when it was deleted: given back once it is made
    # again, by the idnumber it is made with
    held = Counter(c for (c, _u), net in plan.cohort_members.items() if net.before > net.after)
    lost: set[int] = set()
    for cohortid, change in plan.cohorts_deleted.items():
        net = plan.cohorts_updated.get(cohortid)  # made again as it was before the run
        f, origin = {**change.fields, **(net.before if net else {})}, change.origin
        named = _cohort_name(f)
        if named is None:
            members = held[cohortid]
            out.note(
                origin,
                f"cohort {f.get('name')!r} deleted: it had no idnumber, by which the written "
                "cohorts file names cohorts: not re-created"
                + (f", nor its {plural(members, 'member')} given back" if members else ""),
            )
            lost.add(cohortid)
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
        site.cohorts[cohortid] = {"id": cohortid, "name": named[1], "idnumber": named[0]}
        out.note(
            origin,
            f"cohort {named[0]} re-created: its description is not journaled: not given back",
        )
    for (cohortid, userid), net in plan.cohort_members.items():
        if net.before == net.after or (not net.before and cohortid in plan.cohorts_created):
            continue  # a cohort the run made goes with its members
        if cohortid in lost:
            continue  # its note counts them
        row, user = site.cohorts.get(cohortid), site.user(userid)
        named = _cohort_name(row) if row else None
        if named is None or user is None:
            what = f"cohort {named[0] if named else cohortid} member {userid}"
            why = "the user is gone" if user is None else "the cohort is gone or has no idnumber"
            done = "not given back" if net.before else "not removed"
            out.note(net.origin, f"{what}: {why}: {done}")
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
    for cohortid, net in plan.cohorts_updated.items():
        if cohortid not in plan.cohorts_deleted:
            _restore_cohort(cohortid, net, site, out)


#: the cohorts format's columns setting each of a cohort's columns
COHORT_COLUMNS = {"name": "cname", "idnumber": "cidnumber", "description": "cdescription"}


def _restore_cohort(cohortid: int, net: Net, site: Site, out: Written) -> None:
    row = site.cohorts.get(cohortid)
    what = f"cohort {net.fields.get('idnumber') or net.fields.get('name')!r} updated"
    if row is None or row.get("component"):
        out.note(net.origin, f"{what}: gone since, or another plugin's: not restored")
        return
    values: dict[str, Any] = {}
    for column, value in sorted(net.before.items()):
        if column == "contextid":
            level, instance = site.contexts.get(int(value or 0), (0, 0))
            if level == CATEGORY_CONTEXT:
                values["ccatcontext"] = instance
                continue
            why = "moves a cohort into a category only, never back to the system"
        elif column in COHORT_COLUMNS and value not in ("", None):
            values[COHORT_COLUMNS[column]] = value
            continue
        else:
            why = "never empties a value" if column in COHORT_COLUMNS else "has no such column"
        out.note(
            net.origin,
            f"{what}: its {column} was {value!r}: the cohorts format {why}: not restored (set"
            " it back in Moodle)",
        )
    if values:
        out.add("cohorts_restored", net.origin, cmd="add", cid=cohortid, **values)


USERS = SYNC_COMMANDS["users"].columns
REQUIRED = USERS.required


def restorable(column: str) -> bool:
    """A column of the users format an update may be restored through (custom profile
    fields too; never a password)."""
    return column not in ("password", "deleted") and USERS.check(column) is None


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
        before = {k: v for k, v in net.before.items() if restorable(k)}
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
        # named by idnumber (which renames the user back), else by username
        spec = "users_restored" if "idnumber" not in before and row["idnumber"] else "users_by_name"
        if spec == "users_by_name" and "username" in before:
            out.note(
                net.origin,
                f"user {row['username']} updated: the run changed their username and their"
                " idnumber (or they have none), by which the users format names a user: not"
                " restored",
            )
            continue
        values = {c: row[c] for c in ("auth", *REQUIRED, "idnumber")}
        out.add(spec, net.origin, **{**values, **before})
