"""What of a users file's line may be shown: its secret columns' values masked."""

from __future__ import annotations

from runner.core.text import EXCERPT_CHARS

MASK = "***"
#: a failed line with a secret column whose values do not line up with the header
UNALIGNED = (
    f"{MASK} (line not shown: its values do not line up with the header, which has a"
    " password column)"
)


def hide_values(text: str, values: dict[str, str]) -> str:
    """`text` (a line's message) with each of the line's values masked, as a message
    quotes them (`'value'`, its first characters when long): for a line that does not
    line up with a header that has a secret column, any value may be the secret."""
    forms: set[str] = set()
    for value in values.values():
        if len(value) >= 3:
            forms |= {value, repr(value)[1:-1], value[:EXCERPT_CHARS]}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text
