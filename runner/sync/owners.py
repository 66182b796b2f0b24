"""The state's group memberships (runner.sync.state): those a sync adds and removes,
and those another plugin owns (enrol_cohort, enrol_meta...), which a sync keeps except
on the plugin's own unenrolment and on the last unenrolment, as Moodle's unenrol_user
does."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.sync.base import Course, Tally

if TYPE_CHECKING:
    from runner.sync.journal import FileJournal
    from runner.sync.lookup import Lookups
    from runner.sync.writes import Changes


class Owners:
    """The state's loaded memberships (`members`, `owners`: runner.sync.state)."""

    #: (group id, user id) -> (component, itemid) of the memberships another plugin owns
    owners: dict[tuple[int, int], tuple[str, int]]
    #: (course id, user id) -> {group id: membership id | None}
    members: dict[tuple[int, int], dict[int, int | None]]
    component: str
    now: int
    changes: Changes
    journal: FileJournal
    lookups: Lookups
    tally: Tally
    touched_groups: set[int]
    dirty: set[int]

    def groups_of(self, course: Course, userid: int) -> dict[int, int | None]:
        return self.members.setdefault((course.id, userid), {})

    def add_member(self, course: Course, userid: int, groupid: int) -> bool:
        held = self.groups_of(course, userid)
        if groupid in held:
            return False
        held[groupid] = None
        self.changes.gm.new[(groupid, userid)] = {
            "groupid": groupid,
            "userid": userid,
            "timeadded": self.now,
            "component": self.component,
            "itemid": 0,
        }
        self.journal.member_added(course, userid, groupid, self.component)
        self.tally.add("group", groupid, (groupid, userid))
        self.touched_groups.add(groupid)
        self.dirty.add(userid)
        return True

    def remove_member(self, course: Course, userid: int, groupid: int) -> bool:
        held = self.groups_of(course, userid)
        if groupid not in held:
            return False
        owner = self.owners.pop((groupid, userid), (self.component, 0))
        self.journal.member_removed(course, userid, groupid, held[groupid], owner)
        self.tally.remove("remove_member", groupid, (groupid, userid), course.key)
        self.changes.gm.delete((groupid, userid), held.pop(groupid))
        self.touched_groups.add(groupid)
        self.dirty.add(userid)
        return True

    def owner(self, userid: int, groupid: int, plugin: str = "") -> str | None:
        """The component that owns the user's membership of the group, when neither
        this sync nor the line's enrol `plugin` (such a membership is left alone)."""
        owner = self.owners.get((groupid, userid))
        if owner is None or (plugin and owner[0] == f"enrol_{plugin}"):
            return None
        return owner[0]

    def members_of_instance(
        self, course: Course, userid: int, plugin: str, enrolid: int
    ) -> list[int]:
        """The user's groups whose membership an enrol instance owns (Moodle's unenrol
        through that instance removes them)."""
        return [
            gid
            for gid in self.members.get((course.id, userid), {})
            if self.owners.get((gid, userid)) == (f"enrol_{plugin}", enrolid)
        ]
