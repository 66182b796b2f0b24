"""Small helpers for the words users read."""

from __future__ import annotations

import json
import re
from typing import Any

#: names of files a spreadsheet opens as CSV
SPREADSHEET_SUFFIXES = (".csv", ".tsv")
#: a cell a spreadsheet would take for a formula (OWASP's list: = + - @, and tab and
#: carriage return, which `printable` has escaped already), after any separator of the
#: usual CSV dialects, blanks and an opening quote
_FORMULA_CELL = re.compile(r"""(^|[,;\t|])(\s*"?\s*[=+\-@])""")


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


def no_formula(line: str) -> str:
    """`line` with each cell a spreadsheet would evaluate as a formula (`=HYPERLINK(...)`
    after a `;`) prefixed with `'`, which makes it text, as OWASP recommends."""
    return _FORMULA_CELL.sub(r"\1'\2", line)


def json_text(value: Any, **options: Any) -> str:
    """`json.dumps(value)`, readable (non-ASCII letters as they are) but with every
    character that is not printable escaped (`\\u001b`, `\\u2028`, `\\u0085`...): the
    document stays one JSON document that no viewer shows as other lines."""
    text = json.dumps(value, ensure_ascii=False, **options)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\n" else _escaped_char(c) for c in text)


def _escaped_char(char: str) -> str:
    code = ord(char)
    if code > 0xFFFF:  # as JSON writes it: a surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


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


#: the digits of a database id, at most (a BIGINT holds 18 of them whatever they are)
ID_DIGITS = 18


def number(text: str, digits: int = ID_DIGITS) -> int | None:
    """`text` as a whole number if it is written in ASCII digits, at most `digits` of
    them; else None. (`str.isdigit` admits '²' and Arabic-Indic digits, which int()
    refuses or reads; and int() refuses 4,300 digits and more.)"""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= digits else None
