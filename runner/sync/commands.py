"""The sync commands by name: the names and order of the registry
(runner.playbook.registry); a test keeps them equal."""

from __future__ import annotations

from runner.sync.cohorts import Cohorts
from runner.sync.command import SyncCommand
from runner.sync.enrolments import Enrolments
from runner.sync.enrolments.roles import UNPROTECTED_ROLES
from runner.sync.group_members import GroupMembers
from runner.sync.groups import Groups
from runner.sync.users import Users

__all__ = ["SYNC_COMMANDS", "UNPROTECTED_ROLES"]

SYNC_COMMANDS: dict[str, SyncCommand] = {
    "enrolments": Enrolments(),
    "group_members": GroupMembers(),
    "users": Users(),
    "cohorts": Cohorts(),
    "groups": Groups(),
}
