"""The group_members sync command (command.py)."""

from __future__ import annotations

from runner.sync.group_members.command import GroupMembers

__all__ = ["GroupMembers"]
