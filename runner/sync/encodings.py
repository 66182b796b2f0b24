"""A control file's declared encoding, and the check that it is the file's.

A step's `encoding` tells how to read the bytes; a wrong one reads without error when
it is single-byte (each byte is some character in iso-8859-1), and every accented
name would be stored garbled: a UTF-8 "é" (bytes c3 a9) as "Ã©", a cp1252 "œ" (9c) as
a C1 control character. So a file declared single-byte is checked as it streams, at
no second pass: each line holding non-ASCII bytes either decodes as UTF-8 (each such
byte then belongs to a valid multi-byte sequence) or does not. Text in a single-byte
encoding almost never forms valid UTF-8: its accented letters are followed by ASCII
letters, never by the continuation bytes UTF-8 needs (a line such as "RENÉ" followed
by a no-break space is the rare exception). The file is rejected, nothing of it
applied:

- when more of its lines with non-ASCII bytes decode as UTF-8 than not (a UTF-8 file,
  or one mostly UTF-8): declare `encoding: utf-8`; a single coincidence among many
  lines in the declared encoding does not reject it;
- otherwise, when it is declared ISO-8859 (whose bytes 80-9f are C1 control
  characters, which no text holds) and a line has such a byte: it is the Windows code
  page of the same script (cp1252 for iso-8859-1, where 9c is "œ", 80 "€", 92 a right quote).

Pure-ASCII files are the same in every such encoding: never rejected.
"""

from __future__ import annotations

import codecs
import unicodedata
from dataclasses import dataclass

#: an ISO-8859 part -> the Windows code page of the same script (its 80-9f are letters
#: and punctuation where the ISO part has C1 control characters)
WINDOWS = {
    "iso8859-1": "cp1252",
    "iso8859-15": "cp1252",
    "iso8859-2": "cp1250",
    "iso8859-5": "cp1251",
    "iso8859-7": "cp1253",
    "iso8859-9": "cp1254",
    "iso8859-8": "cp1255",
    "iso8859-6": "cp1256",
    "iso8859-4": "cp1257",
    "iso8859-13": "cp1257",
}
_ASCII = b'\n\r;,\t"#azAZ09 '
_C1 = bytes(range(0x80, 0xA0))
#: what ends the word a message quotes around a byte
_BREAKS = frozenset(";,\t:\"'|")


def canonical(name: str) -> str:
    """The codec's own name (`latin-1` -> `iso8859-1`); LookupError when unknown."""
    return codecs.lookup(name).name


def line_oriented(encoding: str) -> bool:
    """Whether ASCII bytes (line ends, separators, quotes) mean themselves in it: the
    reader splits lines and fields on those bytes."""
    try:
        return _ASCII.decode(encoding) == _ASCII.decode("ascii")
    except UnicodeDecodeError:
        return False


def single_byte(encoding: str) -> bool:
    """Whether each byte is one character (or none) in it: iso-8859-*, cp125x, mac-roman;
    not UTF-8 nor a CJK multi-byte encoding."""
    if canonical(encoding).startswith("utf"):
        return False
    probes = [bytes([lead, trail]) for lead in range(0x80, 0x100) for trail in (0x40, 0x80, 0xA1)]
    return all(len(p.decode(encoding, "replace")) == 2 for p in probes)


def has_c1(encoding: str) -> bool:
    """Whether its bytes 80-9f are the C1 control characters (the ISO-8859 parts)."""
    return _C1.decode(encoding, "replace") == _C1.decode("latin-1")


def _word(text: str, at: int) -> str:
    """The word of `text` around index `at` (up to 40 characters)."""
    start = at
    while start > 0 and at - start < 20 and text[start - 1] not in _BREAKS:
        start -= 1
    end = at
    while end < len(text) and end - at < 20 and text[end] not in _BREAKS:
        end += 1
    return text[start:end].strip()


def _shown(text: str) -> str:
    """`text` as it may be quoted: its control characters as \\x escapes."""
    return "".join(c if unicodedata.category(c) != "Cc" else f"\\x{ord(c):02x}" for c in text).join(
        '""'
    )


@dataclass
class EncodingCheck:
    """Watches a file's lines as they stream (`see`); `verdict` once all are seen."""

    encoding: str
    active: bool = False
    c1: bool = False
    utf8_lines: int = 0
    other_lines: int = 0
    #: (line number, raw bytes) of the first line that decodes as UTF-8
    first_utf8: tuple[int, bytes] | None = None
    #: (line number, raw bytes) of the first other line with a byte in 80-9f
    first_c1: tuple[int, bytes] | None = None

    @classmethod
    def of(cls, encoding: str) -> EncodingCheck:
        single = single_byte(encoding)
        return cls(canonical(encoding), single, single and has_c1(encoding))

    def with_bom(self) -> str | None:
        """Why a file starting with a UTF-8 byte order mark is not in the declared
        encoding (None: it may be): Excel's "CSV UTF-8", every accent read wrong."""
        if self.encoding.startswith("utf"):
            return None
        return (
            "the file starts with a UTF-8 byte order mark but is declared"
            f" {self.encoding}: it is UTF-8; declare `encoding: utf-8`"
        )

    def see(self, number: int, raw: bytes) -> None:
        if not self.active or raw.isascii():
            return
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            self.other_lines += 1
            if self.c1 and self.first_c1 is None and any(0x80 <= b < 0xA0 for b in raw):
                self.first_c1 = (number, raw)
            return
        self.utf8_lines += 1
        if self.first_utf8 is None:
            self.first_utf8 = (number, raw)

    def verdict(self) -> tuple[int, str] | None:
        """(line, message) when the file is not in its declared encoding."""
        if self.first_utf8 is not None and self.utf8_lines > self.other_lines:
            return self._utf8(*self.first_utf8)
        if self.first_c1 is not None:
            return self._windows(*self.first_c1)
        return None

    def _utf8(self, number: int, raw: bytes) -> tuple[int, str]:
        text = raw.decode("utf-8")
        at = next(i for i, c in enumerate(text) if not c.isascii())
        char = text[at]
        word = _word(text, at)
        garbled = word.encode("utf-8").decode(self.encoding, "replace")
        seen = plural_lines(self.utf8_lines, self.utf8_lines + self.other_lines)
        return number, (
            f"{_shown(word)} is UTF-8 (bytes {char.encode('utf-8').hex(' ')} for"
            f" {_shown(char)}), which {self.encoding} would store as {_shown(garbled)}: the"
            f" file looks like UTF-8 ({seen}); declare `encoding: utf-8` on its sync step"
        )

    def _windows(self, number: int, raw: bytes) -> tuple[int, str]:
        at = next(i for i, b in enumerate(raw) if 0x80 <= b < 0xA0)
        byte = raw[at : at + 1]
        windows = WINDOWS.get(self.encoding)
        if windows is None:
            return number, (
                f"byte {byte.hex()} is a C1 control character in {self.encoding}, which no"
                " text holds: is the file in a Windows code page (cp125x)? Declare its"
                " encoding on its sync step"
            )
        text = raw.decode(windows, "replace")
        word = _word(text, len(raw[:at].decode(windows, "replace")))
        return number, (
            f"byte {byte.hex()} is a C1 control character in {self.encoding}, which no"
            f" text holds, and {_shown(byte.decode(windows, 'replace'))} in {windows}"
            f" ({_shown(word)}): is the file {windows}? Declare `encoding: {windows}` on"
            " its sync step"
        )


def plural_lines(utf8: int, total: int) -> str:
    """How many of the file's lines with non-ASCII bytes decode as UTF-8, in words."""
    if total == 1:
        return "its one line with non-ASCII bytes decodes as UTF-8"
    if utf8 == total:
        return f"all {total} of its lines with non-ASCII bytes decode as UTF-8"
    return f"{utf8} of its {total} lines with non-ASCII bytes decode as UTF-8"
