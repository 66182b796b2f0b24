"""notify's settings: rendered and checked from the step's parameters, then carried by
its plan to the sending (runner/treatments/notify_send.py)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.core.errors import PlaybookError
from runner.core.secrets import masked_url, register
from runner.core.text import printable
from runner.step.scope import StepScope

#: the headers a webhook's signature goes in (set by postsync, never by `headers:`)
SIGNATURE = "X-Postsync-Signature"
TIMESTAMP = "X-Postsync-Timestamp"
#: a signing key shorter than this is refused: an empty variable would sign with ""
SECRET_MIN = 16


@dataclass(frozen=True)
class Mail:
    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    #: the rendered `subject:`; None: the default, made at plan time from the run
    subject: str | None
    security: str  # starttls | ssl | none
    username: str | None
    password: str | None = field(repr=False)
    timeout: int


@dataclass(frozen=True)
class Hook:
    url: str
    display: str  # the URL as printed: its secrets masked
    headers: tuple[tuple[str, str], ...]
    timeout: int
    #: the key the body is signed with (HMAC-SHA256), if any
    secret: str | None = field(default=None, repr=False)


#: what would end a mail or HTTP header line and start another
_BREAKS = re.compile(r"[\r\n\0]")


def mail_settings(e: Mapping[str, Any], scope: StepScope) -> Mail:
    password = scope.render(e["password"], "email", "password") if "password" in e else None
    register(password)
    port = scope.integer(e.get("smtp_port", 587), "smtp_port", 1)
    security = str(scope.render(e.get("security", "starttls"), "email", "security"))
    if security not in ("starttls", "ssl", "none"):
        raise PlaybookError([scope.error(f"security {security!r}: starttls, ssl or none", "email")])
    return Mail(
        host=str(scope.render(e["smtp_host"], "email", "smtp_host")),
        port=port,
        sender=_header(scope, e["from"], "from"),
        to=tuple(_header(scope, t, "to", i) for i, t in enumerate(e["to"])),
        subject=_header(scope, e["subject"], "subject") if "subject" in e else None,
        security=security,
        username=scope.render(e["username"], "email", "username") if "username" in e else None,
        password=password,
        timeout=scope.integer(e.get("timeout_seconds", 30), "timeout_seconds", 1),
    )


def hook_settings(w: Mapping[str, Any], scope: StepScope) -> Hook:
    url = str(scope.render(w["url"], "webhook", "url"))
    display = masked_url(url)  # its secrets registered before any message shows it
    problem = _url_problem(url)
    if problem:
        raise PlaybookError([scope.error(f"url {display!r}: {problem}", "webhook", "url")])
    secret = None
    if "secret" in w:
        secret = str(scope.render(w["secret"], "webhook", "secret"))
        register(secret)  # never printed, saved, nor given to a child process
        if len(secret) < SECRET_MIN:
            raise PlaybookError(
                [
                    scope.error(
                        f"renders to {len(secret)} characters: a signing key needs at least"
                        f" {SECRET_MIN} (a long random one; is its variable set?)",
                        "webhook",
                        "secret",
                    )
                ]
            )
    headers = tuple(
        (str(k), str(scope.render(v, "webhook", "headers", k)))
        for k, v in sorted(w.get("headers", {}).items())
    )
    for name, value in headers:
        register(value)
        if _BREAKS.search(name) or _BREAKS.search(value):
            problem = "a header's name or value holds a line break or NUL"
        elif name.lower() in (SIGNATURE.lower(), TIMESTAMP.lower()):
            problem = f"{name} is set by postsync (the signature of `secret:`)"
        else:
            continue
        raise PlaybookError([scope.error(problem, "webhook", "headers", name)])
    return Hook(
        url,
        display,
        headers,
        scope.integer(w.get("timeout_seconds", 30), "timeout_seconds", 1),
        secret,
    )


def _header(scope: StepScope, value: Any, *key: str | int) -> str:
    """A mail header's rendered value: a line break in it is refused, never folded."""
    text = str(scope.render(value, "email", *key))
    if _BREAKS.search(text):
        raise PlaybookError(
            [
                scope.error(
                    f"renders to {printable(text)!r}: a line break in a mail header", "email", *key
                )
            ]
        )
    return text


def _url_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook's, if it cannot."""
    from urllib.parse import urlsplit

    if not url.startswith(("http://", "https://")):
        return "not an http(s) URL"
    if any(c.isspace() or not c.isprintable() for c in url):
        return "a space, line break or control character in it"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (it raises for an invalid port)
    except ValueError:  # its message may quote a piece of a password: not shown
        return "not a valid URL (a / ? # or @ in a user or password must be percent-encoded)"
    if "@" in parts.path:
        return "an @ after the host (percent-encode it: %40)"
    if not parts.hostname:
        return "no host"
    return None
