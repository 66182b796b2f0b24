"""Sync commands (tool_sync-compatible control files), registered by name."""

from __future__ import annotations

from runner.sync.base import SyncCommand
from runner.sync.enrolments import Enrolments
from runner.sync.group_members import GroupMembers

SYNC_COMMANDS: dict[str, SyncCommand] = {
    "enrolments": Enrolments(),
    "group_members": GroupMembers(),
}
