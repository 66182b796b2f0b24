"""Small helpers for the words users read."""

from __future__ import annotations


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """`1 file`, `2 files`."""
    return f"{count} {singular if count == 1 else (plural_form or singular + 's')}"


def printable(text: str) -> str:
    """`text` as one safe line: a file name's bytes that are not UTF-8 as `\\xe9`, a
    newline as `\\n`, any other control character escaped. A name can then neither break
    a line of output (nor forge one: `RECAP ...`) nor fail an encoding."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # a byte os.fsdecode could not decode
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char.isprintable() or char == " ":
            out.append(char)
        elif char in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char])
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out)


#: how much of a value read from a control file a message shows
EXCERPT_CHARS = 200


def excerpt(value: str, limit: int = EXCERPT_CHARS) -> str:
    """A value from a file as a message shows it: whole when short, else its first
    `limit` characters and its size (`GGG… (10485760 bytes)`), so that no value can
    blow up an output line, a report or a record."""
    if len(value) <= limit:
        return value
    size = len(value.encode("utf-8", "replace"))
    return f"{value[:limit]}… ({size:,} bytes)"


def quoted(value: str, limit: int = EXCERPT_CHARS) -> str:
    """`excerpt` in quotes, as `{value!r}` shows a value: `'colour'`."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value.encode('utf-8', 'replace')):,} bytes)"
