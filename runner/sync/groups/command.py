"""groups: tool_sync's groups and groupings file (groups.csv)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from runner.core.text import excerpt, quoted
from runner.sync.base import CHANGED, FAILED, UNCHANGED, Course, LineFailed, LineResult, SyncOptions
from runner.sync.groups.state import GroupState
from runner.sync.reader import Columns, DataLine, Header

if TYPE_CHECKING:
    from runner.sync.state import SiteState

KINDS = ("group", "grouping")
LIMITS = {"name": 254, "idnumber": 100}


class Groups:
    """Create and update groups and groupings, and put groups in groupings (groups.csv).

    Columns (header line, any order; `;` by default):
      courseid (required): the course, by `course_key` (idnumber default, shortname, id).
      name (required): the group's or grouping's name.
      type: group (default) or grouping.
      idnumber: its idnumber; a line names an existing group (grouping) of the course by
        idnumber, or by name when the line has no idnumber.
      updateid: the idnumber of the group (grouping) the line updates: its name,
        idnumber and description become the line's.
      description: its description (a non-empty value updates an existing one).
      grouping: a group line: the idnumber of a grouping of the course to put it in.
      selfgrouping: 1 on a group line: a grouping of the group's name (made if
        missing) holds the group, as tool_sync does.

    A line naming no existing group creates it, as Moodle's groups_create_group; a
    group of the same name whose idnumber is empty is given the line's idnumber, one
    with another idnumber fails the line. A line whose grouping part fails (no such
    grouping) keeps what it did to the group, and fails. Groups and groupings are
    never deleted by this file; those it creates or names count as the feed's, which
    clean_empty_groups may delete once empty (a group only when no groups file of the
    run names it).

    Example line: `group;MATH101;Group 1;MATH101-G1;First group;0;MATH101-GA`
    (header `type;courseid;name;idnumber;description;selfgrouping;grouping`)
    """

    columns = Columns(
        ("courseid", "name"),
        ("type", "idnumber", "updateid", "description", "grouping", "selfgrouping"),
    )

    def header(self, state: SiteState, header: Header, options: SyncOptions) -> None:
        state.part(GroupState)

    def prepare(self, state: SiteState, lines: Sequence[DataLine]) -> None:
        lookups = state.lookups
        values = [line.values["courseid"] for line in lines if line.values is not None]
        lookups.resolve_courses(values)
        courses = [c.id for v in values if isinstance(c := lookups.courses.get(v), Course)]
        lookups.load_courses(courses)
        state.part(GroupState).load(courses)

    def apply(self, state: SiteState, line: DataLine, options: SyncOptions) -> LineResult:
        if line.values is None:
            return LineResult(line.number, FAILED, "", line.error or "unreadable")
        v = line.values
        kind = (v.get("type") or "group").lower()
        summary = f"{excerpt(kind)} {excerpt(v['name']) or '-'} in {excerpt(v['courseid']) or '-'}"
        done: list[str] = []
        gid: int | None = None
        try:
            if kind not in KINDS:
                raise LineFailed(f"unknown type {quoted(kind)} (group, grouping)")
            course = state.lookups.course(v["courseid"], "courseid")
            for column, limit in LIMITS.items():
                if len(v.get(column, "")) > limit:
                    raise LineFailed(f"{column} is longer than {limit} characters")
            if not v["name"]:
                raise LineFailed("empty name")
            if v.get("selfgrouping", "") not in ("", "0", "1"):
                raise LineFailed(f"selfgrouping must be 0 or 1, not {quoted(v['selfgrouping'])}")
            if kind == "grouping":
                # the feed declares it: recorded as the feed's (clean_empty_groups)
                state.lookups.made.add(("groupings", self._grouping(state, course, v, done)))
            else:
                gid = self._group(state, course, v, done)
                state.lookups.made.add(("groups", gid))
                self._links(state, course, gid, v, done)
        except LineFailed as exc:
            message = str(exc)
            if done:
                message += " (the rest of the line was applied)"
            return LineResult(line.number, FAILED, summary, message, partly=bool(done), group=gid)
        status = CHANGED if done else UNCHANGED
        notes = "; ".join(n for n in done if n)
        return LineResult(line.number, status, summary, notes, group=gid)

    @staticmethod
    def _wanted(v: dict[str, str], by_update: bool) -> dict[str, str]:
        wanted = {}
        if v.get("description"):
            wanted["description"] = v["description"]
        if by_update:
            wanted["name"] = v["name"]
        if v.get("idnumber"):
            wanted["idnumber"] = v["idnumber"]
        return wanted

    def _group(self, state: SiteState, course: Course, v: dict[str, str], done: list[str]) -> int:
        lookups, groups = state.lookups, state.part(GroupState)

        def rename(gid: int, changes: dict[str, Any], final: dict[str, Any], was: Any) -> None:
            lookups.rename_group(course, gid, final["name"], final["idnumber"])
            groups.update("groups", gid, changes, final, was)

        return self._upsert(
            "group",
            v,
            done,
            find=lambda key, value: lookups.group(course, value, key),
            current=lambda gid: (lookups.group_names[gid], lookups.group_idnumber(course, gid)),
            description=lambda gid: groups.description("groups", gid),
            create=lambda: lookups.create_group(
                course, v["name"], v.get("idnumber", ""), v.get("description", "")
            ),
            rename=rename,
            unique=f"another group of {course.key} has idnumber",
        )

    def _grouping(
        self, state: SiteState, course: Course, v: dict[str, str], done: list[str]
    ) -> int:
        groups = state.part(GroupState)

        def current(gid: int) -> tuple[str, str]:
            name, idnumber = groups.groupings[course.id][gid]
            return name, idnumber

        return self._upsert(
            "grouping",
            v,
            done,
            find=lambda key, value: groups.grouping(course, key, value),
            current=current,
            description=lambda gid: groups.description("groupings", gid),
            create=lambda: groups.create_grouping(
                course, v["name"], v.get("idnumber", ""), v.get("description", "")
            ),
            rename=lambda gid, changes, final, was: groups.update(
                "groupings", gid, changes, final, was
            ),
        )

    def _upsert(
        self,
        kind: str,
        v: dict[str, str],
        done: list[str],
        *,
        find: Callable[[str, str], int | None],
        current: Callable[[int], tuple[str, str]],
        description: Callable[[int], str],
        create: Callable[[], int],
        rename: Callable[[int, dict[str, Any], dict[str, Any], dict[str, Any]], None],
        unique: str = "",
    ) -> int:
        """The group (grouping) the line names, by updateid, idnumber or name: created
        when none is, else given the line's values; `unique`: the message when another
        one of the course has the line's new idnumber (none: idnumbers may repeat)."""
        update, idnumber, name = v.get("updateid", ""), v.get("idnumber", ""), v["name"]
        found = find("idnumber", update or idnumber) if update or idnumber else find("name", name)
        if found is None and idnumber and not update:
            found = find("name", name)
            if found is not None and current(found)[1]:
                raise LineFailed(
                    f"no {kind} has idnumber {idnumber}, and the {kind} named {quoted(name)} has"
                    f" idnumber {current(found)[1]}"
                )
        if found is None:
            done.append("created")
            return create()
        row_name, row_idnumber = current(found)
        now = {"name": row_name, "idnumber": row_idnumber, "description": description(found)}
        changes = {c: x for c, x in self._wanted(v, bool(update)).items() if now[c] != x}
        if unique and "idnumber" in changes:
            other = find("idnumber", changes["idnumber"])
            if other is not None and other != found:
                raise LineFailed(f"{unique} {changes['idnumber']}")
        if changes:
            rename(found, changes, {**now, **changes}, {c: now[c] for c in changes})
            done.append("set " + ", ".join(sorted(changes)))
        return found

    @staticmethod
    def _links(
        state: SiteState, course: Course, gid: int, v: dict[str, str], done: list[str]
    ) -> None:
        groups = state.part(GroupState)
        if v.get("selfgrouping") == "1":
            own = groups.grouping(course, "name", v["name"])
            if own is None:
                own = groups.create_grouping(
                    course, v["name"], v.get("idnumber", ""), v.get("description", "")
                )
                done.append("grouping created")
            if groups.link(own, gid):
                done.append("")
        if v.get("grouping"):
            target = groups.grouping(course, "idnumber", v["grouping"])
            if target is None:
                raise LineFailed(
                    f"no grouping with idnumber {excerpt(v['grouping'])} in course {course.key}"
                )
            if groups.link(target, gid):
                done.append("")
