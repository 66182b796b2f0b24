"""The users sync command: the class (command.py), the columns of Moodle's user
table (fields.py), a batch's state (state.py) and its writes (writes.py)."""

from __future__ import annotations

from runner.sync.users.command import Users

__all__ = ["Users"]
