"""Small helpers for the words users read."""

from __future__ import annotations


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """`1 file`, `2 files`."""
    return f"{count} {singular if count == 1 else (plural_form or singular + 's')}"
