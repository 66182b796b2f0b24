"""The group memberships another plugin owns (enrol_cohort, enrol_meta...): a sync
keeps them, except on the plugin's own unenrolment and on the last unenrolment, as
Moodle's unenrol_user does. What runner.sync.state asks of them."""

from __future__ import annotations

from runner.sync.base import Course


class Owners:
    """Asked of the state's loaded memberships (`owners`, `members`: runner.sync.state)."""

    #: (group id, user id) -> (component, itemid) of the memberships another plugin owns
    owners: dict[tuple[int, int], tuple[str, int]]
    #: (course id, user id) -> {group id: membership id | None}
    members: dict[tuple[int, int], dict[int, int | None]]

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
