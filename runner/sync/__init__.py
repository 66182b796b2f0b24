"""Sync commands (tool_sync-compatible control files), registered by name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class SyncCommand(Protocol):
    """A control-file kind: the JSON Schema of its own step keys."""

    #: properties a step of this command accepts beyond the common ones
    schema: Mapping[str, Any]


SYNC_COMMANDS: dict[str, SyncCommand] = {}
