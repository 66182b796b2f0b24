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
