"""notify's sending: one SMTP exchange, one HTTP POST, each bounded as a whole by its
`timeout_seconds` (runner/treatments/deadline.py) and in what it reads.

Imported when notify sends: loading the treatments (validate, --version) stays fast.
"""

from __future__ import annotations

import base64
import http.client
import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from runner.core.errors import StepError
from runner.core.secrets import redact
from runner.core.text import printable
from runner.treatments.deadline import Deadline

if TYPE_CHECKING:
    import socket

    from runner.treatments.notify_config import Hook, Mail

#: what is read of a webhook's answer body, at most (it is not used)
BODY_LIMIT = 64 * 1024
#: everything received in one exchange, at most (headers, SMTP replies)
RECEIVED_LIMIT = 1024 * 1024


def _said(text: object) -> str:
    """A server's words as one short safe line (they may be anything)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    said = printable(redact(str(text).strip()))
    return said if len(said) <= 200 else said[:200] + "..."


class _SMTP(smtplib.SMTP):
    deadline: Deadline

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return self.deadline.connect(host, port)


class _SMTPSSL(smtplib.SMTP_SSL):
    deadline: Deadline

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return self.context.wrap_socket(self.deadline.connect(host, port), server_hostname=host)


def send_mail(m: Mail, text: str) -> None:
    message = EmailMessage()
    message["From"] = m.sender
    message["To"] = ", ".join(m.to)
    message["Subject"] = m.subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=m.sender.rpartition("@")[2] or None)
    message.set_content(text)
    deadline = Deadline(m.timeout, RECEIVED_LIMIT)
    tls = deadline.tls()
    where = f"mail via {m.host}:{m.port}"
    # the constructor connects: the class carries this exchange's deadline
    bounded = {"deadline": deadline}
    try:
        smtp: smtplib.SMTP
        if m.security == "ssl":
            smtp = type("SMTP_SSL", (_SMTPSSL,), bounded)(
                m.host, m.port, timeout=m.timeout, context=tls
            )
        else:
            smtp = type("SMTP", (_SMTP,), bounded)(m.host, m.port, timeout=m.timeout)
        with smtp:
            if m.security == "starttls":
                smtp.starttls(context=tls)
            if m.username:
                smtp.login(m.username, m.password or "")
            smtp.send_message(message)
    except smtplib.SMTPConnectError as exc:
        if exc.smtp_code == -1:  # a line without a reply code: smtplib dropped its start
            raise StepError(f"{where}: not an SMTP server: ...{_said(exc.smtp_error)}") from None
        raise StepError(f"{where}: refused: {exc.smtp_code} {_said(exc.smtp_error)}") from None
    except (OSError, smtplib.SMTPException, ValueError) as exc:
        if deadline.expired():
            raise StepError(f"{where}: no complete exchange within {m.timeout} s") from None
        raise StepError(f"{where}: {_said(exc)}") from None


class _Connection(http.client.HTTPConnection):
    """An HTTP(S) connection through a bounded socket; it never follows a redirect."""

    def __init__(self, host: str, port: int, deadline: Deadline, https: bool) -> None:
        super().__init__(host, port)
        self.deadline = deadline
        self.https = https
        if https:
            self.default_port = 443  # the Host header carries no `:443`

    def connect(self) -> None:
        sock = self.deadline.connect(self.host, self.port)
        if self.https:
            sock = self.deadline.tls().wrap_socket(sock, server_hostname=self.host)
        self.sock = sock


def _origin(location: str) -> str:
    """Where a redirect points, as it may be printed: its scheme and host only."""
    try:
        parts = urlsplit(location)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "an invalid URL"
    return _said(f"{parts.scheme}://{host}{port}") if host else "a relative URL"


def post(h: Hook, body: bytes) -> None:
    """POST `body` to the hook: success is a 2xx answer to this request itself."""
    parts = urlsplit(h.url)
    https = parts.scheme == "https"
    headers = {"Content-Type": "application/json", "User-Agent": "postsync"}
    if parts.username is not None and not any(k.lower() == "authorization" for k, _ in h.headers):
        user = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(user.encode()).decode("ascii")
    headers |= dict(h.headers)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = Deadline(h.timeout, RECEIVED_LIMIT + BODY_LIMIT)
    where = f"webhook {h.display}"
    connection = _Connection(
        parts.hostname or "", parts.port or (443 if https else 80), deadline, https
    )
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        response.read(BODY_LIMIT)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if deadline.expired():
            raise StepError(f"{where}: no complete answer within {h.timeout} s") from None
        if isinstance(exc, http.client.HTTPException) and not isinstance(exc, OSError):
            raise StepError(f"{where}: not an HTTP answer: {_said(exc)}") from None
        raise StepError(f"{where}: {_said(exc)}") from None
    finally:
        connection.close()
    status = f"HTTP {response.status} {_said(response.reason)}"
    if 300 <= response.status < 400:
        location = response.getheader("Location")
        to = _origin(location) if location else "nowhere (no Location)"
        raise StepError(f"{where}: {status}, a redirect to {to}: not followed")
    if not 200 <= response.status < 300:
        raise StepError(f"{where}: {status}")
