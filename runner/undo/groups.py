"""The undo's groups file (runner.undo.lines), applied first. In this order: groupings
the run deleted made again, groupings it updated given back their values, groups it
deleted made again with their grouping links, groups it updated given back their
values, and the groups a deleted grouping held put back in it. A row deleted after an
update is made again as it was before the run.

The groups format updates a group (grouping) named by its idnumber (`updateid`): its
name, idnumber and description; it never empties a value nor deletes a row. Once the
file is written, the site's names are those the later files see (`Site.name_group`):
a group renamed back, or made again, is named so by the memberships' lines.
"""

from __future__ import annotations

from typing import Any

from runner.undo.lines import Written
from runner.undo.plan import Plan
from runner.undo.site import Site

#: the columns the groups format updates
COLUMNS = ("name", "idnumber", "description")


def _as_before(plan: Plan, kind: str, row_id: int, fields: dict[str, Any]) -> dict[str, Any]:
    net = plan.updated.get((kind, row_id))
    return {**fields, **(net.before if net else {})}


def _remade(plan: Plan, site: Site, out: Written, kind: str) -> dict[int, dict[str, Any]]:
    """The deleted rows of `kind` made again (a group with its grouping links)."""
    made: dict[int, dict[str, Any]] = {}
    for (k, row_id), change in plan.deleted.items():
        if k != kind:
            continue
        f, origin = _as_before(plan, kind, row_id, change.fields), change.origin
        course = site.courses.get(int(f["courseid"]))
        if course is None:
            out.note(origin, f"{kind} {f.get('name')!r}: its course is gone: not re-created")
            continue
        row = {"type": kind, "courseid": course, **{c: f.get(c) for c in COLUMNS}}
        out.add("groups", origin, **row, grouping="", updateid="")
        made[row_id] = f
        if kind == "group":
            site.name_group(row_id, int(f["courseid"]), str(f["name"]), str(f["idnumber"] or ""))
            for link in f.get("groupings") or []:
                grouping = site.groupings.get(link)
                if grouping is None or not grouping.get("idnumber"):
                    out.note(
                        origin,
                        f"group {f.get('name')!r} was in grouping {link}, which "
                        + ("is gone" if grouping is None else "has no idnumber")
                        + ": the groups format names a grouping by idnumber: link not re-made",
                    )
                    continue
                out.add("groups", origin, **row, grouping=grouping["idnumber"], updateid="")
        if f.get("has_enrolmentkey"):
            out.note(
                origin,
                f"group {f.get('name')!r} had an enrolment key: it is not journaled (a "
                "secret): set it again in Moodle",
            )
    return made


def _restore(plan: Plan, site: Site, out: Written, kind: str) -> None:
    """The updated rows of `kind` given back the values they had before the run."""
    for (k, row_id), net in plan.updated.items():
        if k != kind or (kind, row_id) in plan.deleted:
            continue
        if kind == "group":
            found = site.groups.get(row_id)
            now: dict[str, Any] | None = (
                None
                if found is None
                else {
                    "courseid": found[0],
                    "name": found[1],
                    "idnumber": site.group_idnumbers[row_id],
                }
            )
        else:
            now = site.groupings.get(row_id)
        what = f"{kind} {row_id} updated"
        if now is None:
            out.note(net.origin, f"{what}: gone since: not restored")
            continue
        what = f"{kind} {now['name']!r} updated"
        if not now["idnumber"]:
            out.note(
                net.origin,
                f"{what}: the groups format names the {kind} it updates by idnumber, which it has"
                " not: not restored (set its values back in Moodle)",
            )
            continue
        wanted = {c: v for c, v in net.before.items() if c in COLUMNS and v not in ("", None)}
        for column in sorted(set(net.before) - set(wanted)):
            why = "never empties a value" if column in COLUMNS else "has no such column"
            out.note(
                net.origin,
                f"{what}: its {column} was {net.before[column]!r}: the groups format {why}: not"
                " restored (set it back in Moodle)",
            )
        if not wanted:
            continue
        values = {**{c: now[c] for c in ("name", "idnumber")}, "description": "", **wanted}
        course = site.courses[int(now["courseid"])]
        out.add(
            "groups",
            net.origin,
            type=kind,
            courseid=course,
            **values,
            grouping="",
            updateid=now["idnumber"],
        )
        if kind == "group":
            site.name_group(row_id, int(now["courseid"]), values["name"], values["idnumber"])
        else:
            site.groupings[row_id] = {**now, "name": values["name"], "idnumber": values["idnumber"]}


def _held(
    site: Site, out: Written, made: dict[int, dict[str, Any]], origins: dict[int, str]
) -> None:
    """The groups that stay put back in the deleted groupings that held them."""
    for row_id, f in made.items():
        for gid in f.get("groups") or []:
            group = site.groups.get(gid)
            if group is None:
                out.note(
                    origins[row_id],
                    f"grouping {f.get('name')!r} held group {gid}, which is gone: link not re-made",
                )
                continue
            idnumber = site.group_idnumbers.get(gid, "")
            if not idnumber and site.names.get(group, 0) > 1:
                out.note(
                    origins[row_id],
                    f"grouping {f.get('name')!r} held group {group[1]!r}, which has no idnumber"
                    " and whose name another group of the course has: link not re-made",
                )
                continue
            out.add(
                "groups",
                origins[row_id],
                type="group",
                courseid=site.courses[group[0]],
                name=group[1],
                idnumber=idnumber,
                description="",
                grouping=f["idnumber"],
                updateid="",
            )


def groups(plan: Plan, site: Site, out: Written) -> None:
    made = _remade(plan, site, out, "grouping")
    for row_id, f in made.items():  # the groups' links name the groupings made again
        site.groupings[row_id] = {"courseid": f["courseid"], **{c: f.get(c) for c in COLUMNS}}
    _restore(plan, site, out, "grouping")
    _remade(plan, site, out, "group")
    _restore(plan, site, out, "group")
    origins = {i: c.origin for (k, i), c in plan.deleted.items() if k == "grouping"}
    _held(site, out, {i: f for i, f in made.items() if f.get("idnumber")}, origins)
    for row_id, f in made.items():
        if not f.get("idnumber") and f.get("groups"):
            out.note(
                origins[row_id],
                f"grouping {f.get('name')!r} has no idnumber, by which the groups format names"
                " a grouping: its groups are not put back in it",
            )
    for (kind, _id), change in plan.created.items():
        out.note(
            change.origin,
            f"{kind} {change.fields.get('name')!r} created: the groups format never deletes;"
            " clean_empty_groups deletes a feed's group once empty, or delete it in Moodle",
        )
