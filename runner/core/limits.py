"""A limit on destructive changes (max_changes): a count, or a share of a scope."""

from __future__ import annotations


def parse_limit(value: int | str | None) -> tuple[float, bool] | None:
    """(limit, is a percentage) of a limit: 200, or '5%' (None: no limit)."""
    if value is None:
        return None
    if isinstance(value, str) and value.endswith("%"):
        return float(value[:-1]), True
    return float(value), False
