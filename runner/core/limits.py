"""A limit on destructive changes (max_changes): a count, or a share of a scope."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def parse_limit(value: int | str | None) -> tuple[float, bool] | None:
    """(limit, is a percentage) of a limit: 200, or '5%' (None: no limit)."""
    if value is None:
        return None
    if isinstance(value, str) and value.endswith("%"):
        return float(value[:-1]), True
    return float(value), False


def limits(params: Mapping[str, Any], older: str, change: str) -> dict[str, tuple[Any, str]]:
    """A step's limits: change -> (limit as given, the setting's name as the playbook
    gives it), `older` read as the older name of `change`'s; ValueError when both are
    given."""
    found: dict[str, tuple[Any, str]] = {
        name: (value, f"max_changes.{name}")
        for name, value in (params.get("max_changes") or {}).items()
    }
    old = params.get(older)
    if old is not None:
        if change in found:
            raise ValueError(
                f"{older} is max_changes' {change} by its older name: give one of them"
            )
        found[change] = (old, older)
    return found
