"""Sync commands (tool_sync-compatible control files): `SYNC_COMMANDS`, by name
(runner.sync.commands).

Loaded on first use: listing a step's control files (runner.sync.step, which
`validate` uses) needs neither the commands nor SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.sync.commands import SYNC_COMMANDS as SYNC_COMMANDS


def __getattr__(name: str) -> Any:
    if name == "SYNC_COMMANDS":
        from runner.sync.commands import SYNC_COMMANDS

        return SYNC_COMMANDS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
