"""Secrets (database passwords, object-store keys) never printed: every secret postsync
parses out of a URL or its settings is registered here, and what postsync writes for
people (output, errors, crash logs, run records) goes through `redact`.

A secret is masked in every form it can take in that text: as is, URL-encoded (a URL
printed back), and escaped as a JSON string (JSON output, run records: `"` and `\\`
are escaped there before `redact` sees them).
"""

from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

_SECRETS: set[str] = set()
_ORDERED: list[str] = []
MASK = "***"

#: query-string parameters of a database URL that carry a secret (libpq, PyMySQL...)
SECRET_PARAMETERS = frozenset(
    {"password", "passwd", "pwd", "sslpassword", "sslkey_password", "secret", "token"}
)


def forms(secret: str) -> set[str]:
    """The ways `secret` can appear in what postsync prints."""
    escaped = json.dumps(secret, ensure_ascii=False)[1:-1]
    ascii_escaped = json.dumps(secret)[1:-1]
    return {secret, quote(secret, safe=""), quote_plus(secret), escaped, ascii_escaped}


def register(secret: str | None) -> None:
    global _ORDERED
    if not secret or len(secret) < 3 or secret in _SECRETS:
        return
    _SECRETS.add(secret)
    known = set(_ORDERED) | forms(secret)
    # longest first: a form containing another is masked whole
    _ORDERED = sorted(known, key=len, reverse=True)


def redact(text: str) -> str:
    for secret in _ORDERED:
        if secret in text:
            text = text.replace(secret, MASK)
    return text
