"""Secrets (database passwords, object-store keys) never printed: every secret postsync
parses out of a URL or its settings is registered here, and what postsync writes for
people (output, errors, crash logs) goes through `redact`, and what it writes as JSON
(JSON output, run records) through `redact_json` (or `dumps`) as it is serialised.

A secret is masked in every form it can take in that text: as is, URL-encoded (a URL
printed back), and escaped as a JSON string (a JSON document quoted in a message).
JSON is redacted by its structure, never as text: a secret that is also a word of the
document (`true`, a number, a key) would otherwise break it; only its string values
are redacted, where a secret appears unescaped.
"""

from __future__ import annotations

import json
from typing import Any
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


def longest() -> int:
    """The length in UTF-8 bytes of the longest form of a secret registered (0: none):
    what a window kept of some output holds more, so that a secret its start cut is
    dropped whole once the window is masked (runner/treatments/script.py)."""
    return max((len(form.encode("utf-8", "surrogatepass")) for form in _ORDERED), default=0)


def redact(text: str) -> str:
    for secret in _ORDERED:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def dumps(value: Any, **options: Any) -> str:
    """`json.dumps(redact_json(value), **options)`, without walking a document that holds
    no secret: the text is made first, and walked only when some secret's form, escaped
    as the text escapes its strings, is in it (JSON escapes a string character by
    character, so a string holding a secret holds that escaped form in the text)."""
    text = json.dumps(value, **options)
    ensure_ascii = options.get("ensure_ascii", True)
    for secret in _ORDERED:
        if json.dumps(secret, ensure_ascii=ensure_ascii)[1:-1] in text:
            return json.dumps(redact_json(value), **options)
    return text


def redact_json(value: Any) -> Any:
    """`value` (what `json.dumps` takes) with every string value redacted: dictionary
    keys, numbers, booleans and null are kept as they are, so the document stays the
    same JSON with only the secrets in its strings masked."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_json(item) for item in value]
    return value


#: the shortest value of a URL registered as a secret: a shorter one (`true`, `100`)
#: would mask ordinary words of every message; the URL itself shows it as *** all the same
URL_SECRET_MIN = 8


def _register_url_value(value: str) -> None:
    if len(value) >= URL_SECRET_MIN:
        register(value)


def masked_url(url: str) -> str:
    """Register the secrets a URL carries (its user and password, every query value, its
    fragment) and return it as it may be printed, each of them masked.

    The scheme, host, port, path and query parameter names stay readable; every value
    is masked in the URL shown. Only values of at least URL_SECRET_MIN (8) characters
    are registered to be masked in other text too: a short one (`?debug=true&n=100`)
    is no secret worth masking every `true` or `100` of a message for. Whatever comes
    before the last `@` ahead of the query counts as user and password, even a
    malformed one (`user:pa/ss@host`: a `/` not percent-encoded).
    """
    from urllib.parse import unquote, unquote_plus

    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    head, mark, tail = _split_at(rest, "?#")
    userinfo, at, hostpath = head.rpartition("@")
    if at:
        for secret in (userinfo, *userinfo.split(":", 1)):
            _register_url_value(secret)
            _register_url_value(unquote(secret))
        head = f"{MASK}@{hostpath}"
    query, hash_, fragment = tail.partition("#") if mark == "?" else ("", mark, tail)
    if mark == "#":
        query, hash_ = "", "#"
    items = []
    for item in query.split("&") if query else ():
        name, equals, value = item.partition("=")
        if not equals:  # `?TOKEN`: the whole item is the value
            name, value = "", name
        _register_url_value(value)
        _register_url_value(unquote_plus(value))
        items.append(f"{name}={MASK}" if equals else MASK)
    if fragment:
        _register_url_value(fragment)
        _register_url_value(unquote(fragment))
        fragment = MASK
    out = f"{scheme}{sep}{head}"
    if mark == "?":
        out += "?" + "&".join(items)
    return out + (f"#{fragment}" if hash_ else "")


def _split_at(text: str, marks: str) -> tuple[str, str, str]:
    """`text` split at the first of `marks`: before, the mark, after."""
    found = [i for i in (text.find(m) for m in marks) if i >= 0]
    if not found:
        return text, "", ""
    i = min(found)
    return text[:i], text[i], text[i + 1 :]
