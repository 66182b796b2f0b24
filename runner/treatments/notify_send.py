"""notify's sending: one SMTP exchange, one HTTP POST (again after a 5xx answer or a
connection error), each bounded as a whole by its `timeout_seconds`
(runner/treatments/deadline.py) and in what it reads; a webhook's body signed with its
`secret`.

Imported when notify sends: loading the treatments (validate, --version) stays fast.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import hmac
import http.client
import smtplib
import socket
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from runner.core.errors import StepError
from runner.core.secrets import redact
from runner.core.text import plural, printable
from runner.treatments.deadline import Deadline
from runner.treatments.notify_config import SIGNATURE, TIMESTAMP

if TYPE_CHECKING:
    from runner.treatments.notify_config import Hook, Mail

#: what is read of a webhook's answer body, at most (it is not used)
BODY_LIMIT = 64 * 1024
#: everything received in one exchange, at most (headers, SMTP replies)
RECEIVED_LIMIT = 1024 * 1024
#: the wait before a webhook's first retry, doubled at each retry up to RETRY_WAIT_MAX
RETRY_WAIT = 0.5
RETRY_WAIT_MAX = 8.0
#: a retry is made only if timeout_seconds leave at least this much after its wait
RETRY_LEAST = 1.0


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


class _Transient(StepError):
    """A failure another attempt may not meet: a 5xx answer, a connection error."""


def _transient(exc: BaseException) -> bool:
    """A connection error another attempt may not meet."""
    if isinstance(exc, ConnectionError):  # refused, reset, closed before the answer
        return True
    if isinstance(exc, socket.gaierror):
        return exc.errno == socket.EAI_AGAIN  # the resolver cannot answer for now
    return isinstance(exc, OSError) and exc.errno in (
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
    )


def signature(key: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The signature headers of `body` sent at `timestamp` (Unix seconds): the
    HMAC-SHA256 with `key` of the timestamp, a `.` and the body."""
    stamp = str(timestamp)
    # a key from the environment may hold bytes that are not UTF-8: signed with those
    secret = key.encode("utf-8", "surrogateescape")
    digest = hmac.new(secret, stamp.encode("ascii") + b"." + body, hashlib.sha256)
    return {TIMESTAMP: stamp, SIGNATURE: f"sha256={digest.hexdigest()}"}


def post(h: Hook, body: bytes) -> str:
    """POST `body` to the hook, again after a 5xx answer or a connection error while
    its timeout_seconds allow (a wait doubled at each retry). Success is a 2xx answer
    to a request itself; the note, and any error, say how many attempts were made."""
    end = time.monotonic() + h.timeout
    wait = RETRY_WAIT
    attempts = 0
    while True:
        attempts += 1
        try:
            _attempt(h, body, end)
        except _Transient as exc:
            if end - time.monotonic() - wait >= RETRY_LEAST:
                time.sleep(wait)
                wait = min(wait * 2, RETRY_WAIT_MAX)
                continue
            tried = f"{plural(attempts, 'attempt')} within timeout_seconds {h.timeout}"
            raise StepError(f"{exc} ({tried})") from None
        except StepError as exc:
            raise StepError(f"{exc} ({plural(attempts, 'attempt')})") from None
        return f"after {attempts} attempts" if attempts > 1 else ""


def _attempt(h: Hook, body: bytes, end: float) -> None:
    """One POST, within what is left of the exchange (until `end`); _Transient for what
    another attempt may not meet."""
    parts = urlsplit(h.url)
    https = parts.scheme == "https"
    headers = {"Content-Type": "application/json", "User-Agent": "postsync"}
    if parts.username is not None and not any(k.lower() == "authorization" for k, _ in h.headers):
        user = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(user.encode()).decode("ascii")
    headers |= dict(h.headers)
    if h.secret is not None:  # signed at each attempt: its own timestamp
        headers |= signature(h.secret, body, int(time.time()))
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = Deadline(h.timeout, RECEIVED_LIMIT + BODY_LIMIT, until=end)
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
        if _transient(exc):  # http.client's RemoteDisconnected is a ConnectionError
            raise _Transient(f"{where}: {_said(exc)}") from None
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
    if 500 <= response.status < 600:
        raise _Transient(f"{where}: {status}")
    if not 200 <= response.status < 300:
        raise StepError(f"{where}: {status}")
