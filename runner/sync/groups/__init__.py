"""The groups sync command: the class (command.py) and the groups and groupings
a batch touches (state.py)."""

from __future__ import annotations

from runner.sync.groups.command import Groups

__all__ = ["Groups"]
