"""The columns of a users file that map to Moodle's `user` table, each value checked
and normalised as Moodle's user_create_user / user_update_user take it."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from runner.core.text import number, quoted
from runner.sync.base import LineFailed

#: text columns and their length in Moodle's user table
TEXT = {
    "firstname": 100,
    "lastname": 100,
    "email": 100,
    "idnumber": 255,
    "institution": 255,
    "department": 255,
    "city": 120,
    "phone1": 20,
    "phone2": 20,
    "address": 255,
    "middlename": 255,
    "alternatename": 255,
    "firstnamephonetic": 255,
    "lastnamephonetic": 255,
    "description": 0,  # text: no limit
}
#: small integer columns and the values Moodle takes
FLAGS = {
    "suspended": (0, 1),
    "mailformat": (0, 1),
    "maildisplay": (0, 1, 2),
    "maildigest": (0, 1, 2),
    "autosubscribe": (0, 1),
    "trackforums": (0, 1),
}
SPECIAL = ("username", "auth", "country", "lang", "timezone", "password", "deleted")
OPTIONAL = tuple(n for n in (*TEXT, *FLAGS, *SPECIAL) if n not in ("firstname", "lastname"))
REQUIRED = ("username", "firstname", "lastname")
PROFILE = "profile_field_"
#: auth plugins whose passwords Moodle keeps (hashed in user.password); the others
#: (ldap, cas, shibboleth, oauth2...) check passwords elsewhere: 'not cached'
LOCAL_PASSWORDS = frozenset({"manual", "email", "webservice"})
NOT_CACHED = "not cached"

_USERNAME = re.compile(r"[-.@_a-z0-9]+")
_AUTH = re.compile(r"[a-z][a-z0-9_]*")
_LANG = re.compile(r"[a-z]{2,3}(_[a-z0-9]+)*")
_COUNTRY = re.compile(r"[A-Z]{2}")
# Moodle's PARAM_TIMEZONE: 99 (the server's), an offset, or a zone name
_TIMEZONE = re.compile(r"99|[+-]?(1[0-4]|[0-9])(\.[05])?|[A-Za-z0-9]+(/?[A-Za-z0-9_+-])+")
# the address rule of Moodle's validate_email: PHPMailer's validateAddress, which is
# PHP's FILTER_VALIDATE_EMAIL (ASCII, RFC 5321: dot-atoms or quoted strings before the
# @, a fully-qualified domain name or an address literal after it), then no < or >
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_QUOTED = r'"(?:[\x01-\x08\x0b\x0c\x0e-\x1f\x21\x23-\x5b\x5d-\x7f]|\\[\x00-\x7f])*"'
_WORD = f"(?:{_ATOM}|{_QUOTED})"
_LOCAL = re.compile(f"{_WORD}(?:\\.{_WORD})*")
_LABEL = r"(?:xn--)?[a-z0-9]+(?:-+[a-z0-9]+)*"
_TOP = r"(?:[a-z][a-z0-9]*|xn--[a-z0-9]+)(?:-+[a-z0-9]+)*"
_DOMAIN = re.compile(f"(?:{_LABEL}\\.)+{_TOP}", re.IGNORECASE)
_LITERAL = re.compile(r"\[(?:IPv6:(?P<v6>[0-9A-Fa-f:.]+)|(?P<v4>[0-9.]+))\]")


@dataclass
class UserLine:
    """What a users line says, checked: the columns to write, the profile fields'
    values (by field id), the password in clear (None: not given)."""

    username: str
    fields: dict[str, Any] = field(default_factory=dict)
    profile: dict[int, str] = field(default_factory=dict)
    password: str | None = None
    deleted: bool = False


def valid_email(address: str) -> bool:
    """Whether Moodle's validate_email takes this address."""
    if not address.isascii() or any(c in address for c in "<>\r\n") or len(address) >= 255:
        return False
    local, at, domain = address.rpartition("@")
    if not at or len(local) > 64 or not _LOCAL.fullmatch(local):
        return False
    literal = _LITERAL.fullmatch(domain)
    if literal is None:
        labels = domain.split(".")
        return bool(_DOMAIN.fullmatch(domain)) and all(len(p) < 64 for p in labels)
    try:
        if literal["v6"] is not None:
            ipaddress.IPv6Address(literal["v6"])
        else:
            ipaddress.IPv4Address(literal["v4"])  # no leading zeros, as PHP's
    except ValueError:
        return False
    return True


def _flag(name: str, value: str, allowed: tuple[int, ...]) -> int:
    flag = number(value)
    if flag is not None and flag in allowed:
        return flag
    raise LineFailed(f"{name} must be one of {', '.join(map(str, allowed))}, not {quoted(value)}")


def username_of(value: str, extended: bool) -> str:
    """A username as Moodle keeps it: lower case; without the site's
    extendedusernamechars setting, only letters, digits and - . @ _"""
    name = value.strip().lower()
    if not name:
        raise LineFailed("empty username")
    if len(name) > 100:
        raise LineFailed(f"username {quoted(name[:20])}... is longer than 100 characters")
    if extended:
        if any(c.isspace() or not c.isprintable() for c in name):
            raise LineFailed(f"username {quoted(name)} contains a space or a control character")
    elif not _USERNAME.fullmatch(name):
        raise LineFailed(
            f"username {quoted(name)} has characters Moodle does not allow in usernames (letters,"
            " digits and - . @ _; or set Moodle's extendedusernamechars)"
        )
    return name


def parse(values: dict[str, str], extended: bool, profile: dict[str, Any]) -> UserLine:
    """Check a line's values; `profile`: column name -> the site's field (id, datatype,
    param1, param2). LineFailed names the first column that is wrong."""
    line = UserLine(username_of(values.get("username", ""), extended))
    for name, value in values.items():
        if name in TEXT:
            limit = TEXT[name]
            if limit and len(value) > limit:
                raise LineFailed(f"{name} is longer than {limit} characters")
            if name == "email" and value and not valid_email(value):
                raise LineFailed(f"email {quoted(value)} is not an e-mail address")
            line.fields[name] = value
        elif name in FLAGS:
            if value:  # empty: left as it is
                line.fields[name] = _flag(name, value, FLAGS[name])
        elif name == "deleted":
            line.deleted = bool(value) and _flag(name, value, (0, 1)) == 1
        elif name == "auth":
            if value:
                if not _AUTH.fullmatch(value) or len(value) > 20:
                    raise LineFailed(f"auth {quoted(value)} is not an authentication plugin name")
                line.fields["auth"] = value
        elif name == "country":
            country = value.upper()
            if country and not _COUNTRY.fullmatch(country):
                raise LineFailed(f"country {quoted(value)} is not a two-letter country code")
            line.fields["country"] = country
        elif name == "lang":
            lang = value.lower().replace("_utf8", "")
            if lang:
                if not _LANG.fullmatch(lang) or len(lang) > 30:
                    raise LineFailed(
                        f"lang {quoted(value)} is not a language code (e.g. en, fr_ca)"
                    )
                line.fields["lang"] = lang
        elif name == "timezone":
            if value:
                if not _TIMEZONE.fullmatch(value) or len(value) > 100:
                    raise LineFailed(
                        f"timezone {quoted(value)} is not a time zone (e.g. Europe/Paris)"
                    )
                line.fields["timezone"] = value
        elif name == "password":
            line.password = value or None
        elif name in profile:
            line.profile[profile[name][0]] = profile_value(name, value, profile[name])
    for name in ("firstname", "lastname"):
        if not line.deleted and not line.fields.get(name):
            raise LineFailed(f"empty {name}")
    return line


def profile_value(name: str, value: str, spec: tuple[int, str, str, str]) -> str:
    """A custom profile field's value as Moodle stores it (user_info_data.data)."""
    _fid, datatype, param1, param2 = spec
    if datatype == "checkbox":
        return str(_flag(name, value or "0", (0, 1)))
    if datatype == "menu" and value:
        options = [o.strip() for o in (param1 or "").splitlines() if o.strip()]
        if value not in options:
            raise LineFailed(f"{name} must be one of {', '.join(map(repr, options))}")
    if datatype == "datetime" and value and number(value) is None:
        raise LineFailed(f"{name} must be a Unix time (seconds), not {quoted(value)}")
    if datatype == "text" and str(param2 or "").isdigit() and len(value) > int(param2):
        raise LineFailed(f"{name} is longer than the field's {param2} characters")
    return value
