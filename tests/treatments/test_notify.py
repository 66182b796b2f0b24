"""notify through `postsync run`: a real SMTP server (aiosmtpd) and an HTTP server on
loopback, started here; `when:` on failures; the preview sends nothing; the password
and the webhook's headers are never printed; a server that is down fails the step."""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import hashlib
import hmac
import itertools
import json
import socket
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLI, missing, postsync_process
from tests.pgserver import PostgresServer, ServerUnavailable, start_server

aiosmtpd = pytest.importorskip("aiosmtpd")
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            self.logins.append((data.login.decode(), data.password.decode()))
            return AuthResult(success=data.password == b"s3cr3t-pw")
        return AuthResult(success=False)


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as probe:  # a free port (the controller checks it by connecting)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=inbox.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def hook() -> Iterator[tuple[list[dict[str, Any]], int]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(
                {"headers": dict(self.headers), "body": json.loads(body), "path": self.path}
            )
            # any other path: a 4xx, which is not retried (`scripted` answers 5xx)
            self.send_response(204 if self.path.partition("?")[0] == "/ok" else 422)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


#: the host name a notification says the run ran on
HOST = socket.gethostname()


def parsed(message: Any) -> tuple[str, str]:
    """A message the SMTP server received: its subject (unfolded) and its text."""
    mail = email.message_from_bytes(message.content, policy=email.policy.default)
    assert isinstance(mail, email.message.EmailMessage)
    return str(mail["Subject"]), str(mail.get_content()).replace("\r\n", "\n")


def playbook(tmp_path: Path, smtp_port: int, hook_port: int, path: str = "ok") -> Path:
    text = f"""name: Notify test
area: area
post_treatments:
  - name: purge
    purge_old_files: {{paths: [archives], older_than_days: 30}}
  - name: tell ops
    when: run.failed
    notify:
      email:
        smtp_host: 127.0.0.1
        smtp_port: {smtp_port}
        security: none
        from: postsync@example.org
        to: [ops@example.org]
        username: postsync
        password: "{{{{ env.SMTP_PW }}}}"
      webhook:
        url: http://127.0.0.1:{hook_port}/{path}
        headers: {{Authorization: "Bearer {{{{ env.HOOK_TOKEN }}}}"}}
"""
    path_ = tmp_path / "playbook.yml"
    path_.write_text(text)
    return path_


def test_notifies_by_mail_and_webhook_when_a_step_failed(
    tmp_path: Path,
    area: Path,
    cli: CLI,
    smtp: tuple[Inbox, int],
    hook: tuple[list[dict[str, Any]], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inbox, smtp_port = smtp
    received, hook_port = hook
    monkeypatch.setenv("SMTP_PW", "s3cr3t-pw")
    monkeypatch.setenv("HOOK_TOKEN", "tok-123456")
    book = playbook(tmp_path, smtp_port, hook_port)
    # nothing failed: `when` is false, nothing is sent
    ok = cli("run", book)
    assert ok.code == 0 and "SKIPPED  tell ops" in ok.out
    assert inbox.messages == [] and received == []
    # a failed step: mail and webhook, after a preview that sends nothing
    (area / "archives").write_text("a file, not a directory")
    preview = cli("run", book, "--check")
    assert "    mail ops@example.org via 127.0.0.1" in preview.out
    assert f"    post http://127.0.0.1:{hook_port}/ok" in preview.out
    assert inbox.messages == [] and received == []
    result = cli("run", book)
    assert result.code == 3, result.out
    assert "CHANGED  tell ops  (2 notifications)" in result.out
    (message,) = inbox.messages
    assert message.rcpt_tos == ["ops@example.org"]
    subject, text = parsed(message)
    assert subject == (
        f"postsync Notify test on {HOST}: 1 step failed (purge: archives is not a directory)"
    )
    assert "FAILED   purge  (archives is not a directory)\n" in text
    assert inbox.logins == [("postsync", "s3cr3t-pw")]
    (post,) = received
    assert post["headers"]["Authorization"] == "Bearer tok-123456"
    assert post["headers"]["Content-Type"] == "application/json"
    assert post["body"]["failed"] is True
    assert post["body"]["steps"][0] == {
        "name": "purge",
        "status": "failed",
        "detail": "",
        "error": "archives is not a directory",
    }
    for out in (preview.out, preview.err, result.out, result.err):
        assert "s3cr3t-pw" not in out and "tok-123456" not in out


def test_a_notification_that_cannot_be_sent_fails_the_step(
    tmp_path: Path,
    area: Path,
    cli: CLI,
    smtp: tuple[Inbox, int],
    hook: tuple[list[dict[str, Any]], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inbox, smtp_port = smtp
    _received, hook_port = hook
    monkeypatch.setenv("SMTP_PW", "wrong-pw")
    monkeypatch.setenv("HOOK_TOKEN", "tok-123456")
    (area / "archives").write_text("a file, not a directory")
    result = cli("run", playbook(tmp_path, smtp_port, hook_port, path="broken"))
    assert result.code == 3
    assert "FAILED   tell ops  (2 notifications failed: mail via 127.0.0.1" in result.out
    assert "webhook http://127.0.0.1" in result.out
    assert "HTTP 422 Unprocessable Entity (1 attempt)" in result.out
    assert "wrong-pw" not in result.out and inbox.messages == []


def notify_only(tmp_path: Path, params: str, head: str = "") -> Path:
    """A playbook whose one post-treatment notifies with `params` (the notify mapping's
    YAML), after `head` (e.g. a database and a sync)."""
    body = "\n".join("      " + line for line in params.strip().splitlines())
    text = (
        f"name: Notify alone\narea: area\n{head}post_treatments:\n"
        f"  - name: tell ops\n    notify:\n{body}\n"
    )
    path = tmp_path / "playbook.yml"
    path.write_text(text)
    return path


def test_the_webhook_urls_secrets_are_masked_in_every_output_and_the_record(
    tmp_path: Path,
    area: Path,
    cli: CLI,
    hook: tuple[list[dict[str, Any]], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    received, port = hook
    monkeypatch.setenv("HOOK_PW", "url-pw+9876")
    secrets = ("hookuser", "url-pw+9876", "qtok-5555", "ops-room", "frag-4321")
    url = (
        f"http://hookuser:{{{{ env.HOOK_PW | urlencode }}}}@127.0.0.1:{port}/ok"
        "?token=qtok-5555&channel=ops-room#frag-4321"
    )
    # a sync of a control file: each run saves its record
    assert cli("db", "init", f"sqlite:///{tmp_path / 'moodle.db'}", "--demo").code == 0
    (area / "enrols.csv").write_text("cmd;cid;uid;rolename\nadd;MATH101;U0001;student\n")
    sync = (
        f"database: sqlite:///{tmp_path / 'moodle.db'}\n"
        "sync:\n  - {command: enrolments, file: enrols.csv}\n"
    )
    book = notify_only(tmp_path, f'webhook:\n  url: "{url}"', sync)
    masked = f"http://***@127.0.0.1:{port}/ok?token=***&channel=***#***"
    outputs = []
    for args in ((), ("--output", "json"), ("--output", "jsonl")):
        preview = cli("run", book, "--check", *args)
        assert preview.code == 0, preview.out + preview.err
        result = cli("run", book, *args)
        assert result.code == 0, result.out + result.err
        assert masked in preview.out and masked in result.out
        outputs += [preview.out, preview.err, result.out, result.err]
    # a failure's message too
    book.write_text(book.read_text().replace("/ok?", "/broken?"))
    failed = cli("run", book)
    assert failed.code == 3 and "HTTP 422" in failed.out
    assert masked.replace("/ok?", "/broken?") in failed.out
    outputs += [failed.out, failed.err]
    records = list((area / ".postsync" / "runs").glob("*.json"))
    assert len(records) == 4
    outputs += [record.read_text() for record in records]
    for out in outputs:
        for secret in (*secrets, "url-pw%2B9876"):
            assert secret not in out, (secret, out)
    # what is masked is still sent: the query, and the user and password as Basic auth
    assert len(received) == 4
    basic = "Basic " + base64.b64encode(b"hookuser:url-pw+9876").decode()
    assert received[0]["headers"]["Authorization"] == basic
    assert received[0]["path"] == "/ok?token=qtok-5555&channel=ops-room"


def test_a_url_value_that_is_a_common_word_keeps_the_json_and_the_record_valid(
    tmp_path: Path,
    area: Path,
    cli: CLI,
    hook: tuple[list[dict[str, Any]], int],
) -> None:
    """`?debug=true&n=100`: shown ***, but `true` and `100` are no secrets to mask in
    every text; the JSON output and the run record stay JSON (`post` reads it)."""
    received, port = hook
    url = f"http://127.0.0.1:{port}/ok?debug=true&n=100&token=s3cretT0kenValue"
    assert cli("db", "init", f"sqlite:///{tmp_path / 'moodle.db'}", "--demo").code == 0
    (area / "enrols.csv").write_text("cmd;cid;uid;rolename\nadd;MATH101;U0001;student\n")
    sync = (
        f"database: sqlite:///{tmp_path / 'moodle.db'}\n"
        "sync:\n  - {command: enrolments, file: enrols.csv}\n"
    )
    book = notify_only(tmp_path, f'webhook:\n  url: "{url}"', sync)
    masked = f"http://127.0.0.1:{port}/ok?debug=***&n=***&token=***"
    preview = cli("run", book, "--check", "--output", "json")
    assert preview.code == 0, preview.out + preview.err
    document = json.loads(preview.out)
    assert document["check"] is True and masked in preview.out
    events = cli("run", book, "--check", "--output", "jsonl")
    assert [json.loads(line) for line in events.out.splitlines()][-1]["check"] is True
    result = cli("run", book, "--output", "json")
    assert result.code == 0, result.out + result.err
    assert json.loads(result.out)["check"] is False
    (record,) = (area / ".postsync" / "runs").glob("*.json")
    assert json.loads(record.read_text())["run_id"] == json.loads(result.out)["run_id"]
    again = cli("post", record, "--check")
    assert again.code == 0, again.out + again.err
    for out in (preview, events, result, again):
        assert "s3cretT0kenValue" not in out.out + out.err, out.out
    assert "s3cretT0kenValue" not in record.read_text()
    assert received[0]["path"] == "/ok?debug=true&n=100&token=s3cretT0kenValue"


def test_a_secret_that_is_a_json_word_keeps_the_json_output_and_record_valid(
    tmp_path: Path, area: Path, cli: CLI
) -> None:
    """A mail password `true` is masked in the JSON's strings only: `"check": true`
    stays JSON, and the record stays one `post` reads."""
    assert cli("db", "init", f"sqlite:///{tmp_path / 'moodle.db'}", "--demo").code == 0
    (area / "enrols.csv").write_text("cmd;cid;uid;rolename\nadd;MATH101;U0001;student\n")
    sync = (
        f"database: sqlite:///{tmp_path / 'moodle.db'}\n"
        "sync:\n  - {command: enrolments, file: enrols.csv}\n"
    )
    mail = (
        "email:\n  smtp_host: 127.0.0.1\n  from: postsync@example.org\n"
        "  to: [ops@example.org]\n  smtp_port: 1\n  username: postsync\n  password: 'true'\n"
    )
    book = notify_only(tmp_path, mail, sync)
    for output in ("json", "jsonl"):
        preview = cli("run", book, "--check", "--output", output)
        assert preview.code == 0, preview.out + preview.err
        lines = preview.out.splitlines() if output == "jsonl" else [preview.out]
        assert [json.loads(line) for line in lines][-1]["check"] is True
    result = cli("run", book, "--output", "json")  # no mail server: the step fails
    assert json.loads(result.out)["exit_code"] == result.code == 3, result.out + result.err
    (record,) = (area / ".postsync" / "runs").glob("*.json")
    assert json.loads(record.read_text())["run_id"] == json.loads(result.out)["run_id"]
    again = cli("post", record, "--check")
    assert again.code == 0, again.out + again.err


def test_an_invalid_webhook_url_is_a_located_error_that_masks_its_secrets(
    tmp_path: Path, area: Path, cli: CLI
) -> None:
    for url, secrets in (
        # an invalid port
        ("http://u:pw-777@127.0.0.1:99999/x?k=tok-888", ("pw-777", "777", "tok-888")),
        # a / not percent-encoded in the password
        ("http://u:pw/777@127.0.0.1/x?k=tok-888", ("pw/777", "777", "tok-888")),
        # an @ in the path: what comes before it is taken for user and password
        ("http://127.0.0.1/x@pw-777?k=tok-888", ("127.0.0.1/x", "tok-888")),
    ):
        book = notify_only(tmp_path, f'webhook:\n  url: "{url}"')
        result = cli("run", book)
        assert result.code == 4 and "playbook.yml:7:" in result.err, result.err
        for secret in secrets:
            assert secret not in result.err + result.out, (url, result.err)


class RawServer:
    """A TCP server on loopback answering each connection with `respond(conn, stop)`:
    what a hostile or broken server does."""

    def __init__(
        self, respond: Callable[[socket.socket, threading.Event], None], host: str
    ) -> None:
        self.respond = respond
        self.stop = threading.Event()
        self.listener = socket.create_server((host, 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self.respond(conn, self.stop)

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


@pytest.fixture
def raw_servers() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(
        respond: Callable[[socket.socket, threading.Event], None], host: str = "127.0.0.1"
    ) -> RawServer:
        servers.append(RawServer(respond, host))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def trickle(data: bytes) -> Callable[[socket.socket, threading.Event], None]:
    """Send `data` one byte every half second (a server that never quite answers)."""

    def respond(conn: socket.socket, stop: threading.Event) -> None:
        for i in range(len(data)):
            if stop.wait(0.5):
                return
            conn.sendall(data[i : i + 1])

    return respond


def test_a_trickling_server_is_cut_at_timeout_seconds(
    tmp_path: Path, area: Path, cli: CLI, raw_servers: Callable[..., RawServer]
) -> None:
    # each byte within the old per-operation timeout: the exchange itself never ends
    slow_head = raw_servers(trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + b"X" * 60))
    slow_body = raw_servers(
        trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000)
    )
    slow_greeting = raw_servers(trickle(b"220 " + b"x" * 80 + b"\r\n"))
    for server in (slow_head, slow_body):
        book = notify_only(
            tmp_path,
            f"webhook: {{url: 'http://127.0.0.1:{server.port}/x', timeout_seconds: 2}}",
        )
        start = time.monotonic()
        result = cli("run", book)
        took = time.monotonic() - start
        assert result.code == 3, result.out + result.err
        assert "no complete answer within 2 s" in result.out
        assert took < 30, took  # a trickle of 2 s a byte would take minutes
    book = notify_only(
        tmp_path,
        f"""email:
  smtp_host: 127.0.0.1
  smtp_port: {slow_greeting.port}
  security: none
  from: postsync@example.org
  to: [ops@example.org]
  timeout_seconds: 2""",
    )
    start = time.monotonic()
    result = cli("run", book)
    took = time.monotonic() - start
    assert result.code == 3 and "no complete exchange within 2 s" in result.out, result.out
    assert took < 30, took


def test_a_resolver_that_never_answers_is_cut_at_timeout_seconds(
    tmp_path: Path, area: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host's name is looked up within timeout_seconds (a resolver that never
    answers: the system's would try for its own minutes)."""
    asked = threading.Event()

    def never(*args: object, **kwargs: object) -> list[object]:
        asked.set()
        time.sleep(120)
        return []

    monkeypatch.setattr(socket, "getaddrinfo", never)
    book = notify_only(tmp_path, "webhook: {url: 'http://hooks.example.org/x', timeout_seconds: 2}")
    start = time.monotonic()
    result = cli("run", book)
    took = time.monotonic() - start
    assert asked.is_set()
    assert result.code == 3, result.out + result.err
    assert "hooks.example.org/x: no complete answer within 2 s" in result.out, result.out
    assert took < 30, took  # the resolver would have taken 120 s


def test_an_endless_answer_is_read_no_further_than_64_kib(
    tmp_path: Path, area: Path, cli: CLI, raw_servers: Callable[..., RawServer]
) -> None:
    sent = [0]

    def endless(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        chunk = b"y" * 65536
        while not stop.is_set() and sent[0] < 512 * 1024 * 1024:
            conn.sendall(chunk)
            sent[0] += len(chunk)

    server = raw_servers(endless)
    book = notify_only(tmp_path, f"webhook: {{url: 'http://127.0.0.1:{server.port}/x'}}")
    result = cli("run", book)
    assert result.code == 0 and "CHANGED  tell ops" in result.out, result.out
    # the client hung up after 64 KiB: what the server got out is what the sockets'
    # buffers held, not the 512 MiB it meant to send
    assert sent[0] < 64 * 1024 * 1024, sent[0]


def test_a_server_that_is_not_http_or_smtp_fails_the_step(
    tmp_path: Path, area: Path, cli: CLI, raw_servers: Callable[..., RawServer]
) -> None:
    def ssh(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n")
        conn.recv(65536)
        stop.wait(1)

    server = raw_servers(ssh)
    book = notify_only(
        tmp_path,
        f"""webhook: {{url: 'http://127.0.0.1:{server.port}/x', timeout_seconds: 5}}
email:
  smtp_host: 127.0.0.1
  smtp_port: {server.port}
  security: none
  from: postsync@example.org
  to: [ops@example.org]
  timeout_seconds: 5""",
    )
    result = cli("run", book)
    assert result.code == 3, result.out + result.err
    assert "FAILED   tell ops  (2 notifications failed: " in result.out
    assert "not an HTTP answer: SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13 (1 attempt))" in result.out
    assert "not an SMTP server: ...2.0-OpenSSH_9.6p1" in result.out


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_and_gets_no_credentials(
    tmp_path: Path,
    area: Path,
    cli: CLI,
    raw_servers: Callable[..., RawServer],
    monkeypatch: pytest.MonkeyPatch,
    status: int,
) -> None:
    elsewhere: list[bytes] = []

    def listen(conn: socket.socket, stop: threading.Event) -> None:
        elsewhere.append(conn.recv(65536))

    other_port = raw_servers(listen, "127.0.0.2").port  # another host, on loopback too

    def redirect(conn: socket.socket, stop: threading.Event) -> None:
        conn.recv(65536)
        conn.sendall(
            f"HTTP/1.1 {status} Moved\r\nLocation: http://127.0.0.2:{other_port}/ok"
            "?token=loc-secret-42\r\nContent-Length: 0\r\n\r\n".encode()
        )

    server = raw_servers(redirect)
    monkeypatch.setenv("HOOK_TOKEN", "tok-123456")
    book = notify_only(
        tmp_path,
        f"""webhook:
  url: http://127.0.0.1:{server.port}/hook
  headers: {{Authorization: "Bearer {{{{ env.HOOK_TOKEN }}}}"}}""",
    )
    result = cli("run", book)
    assert result.code == 3, result.out + result.err
    assert f"HTTP {status} Moved, a redirect to http://127.0.0.2:{other_port}: not followed" in (
        result.out
    )
    assert "loc-secret-42" not in result.out and "tok-123456" not in result.out
    assert elsewhere == [] and server.connections == 1


def test_a_line_break_in_a_mail_header_or_webhook_header_is_refused_at_plan_time(
    tmp_path: Path, area: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    mail = """email:
  smtp_host: 127.0.0.1
  security: none
  from: postsync@example.org
  to: [ops@example.org]
"""
    for line in (
        "  subject: \"{{ 'ok\\r\\nBcc: victim@example.org' }}\"",
        "  subject: \"{{ 'ok\\nX-Injected: 1' }}\"",
        "  subject: \"{{ 'ok\\rX-Injected: 1' }}\"",
    ):
        book = notify_only(tmp_path, mail + line)
        for args in ((), ("--check",)):
            result = cli("run", book, *args)
            assert result.code == 4, result.out + result.err
            assert "playbook.yml:" in result.err and "a line break in a mail header" in result.err
    book = notify_only(tmp_path, mail.replace("ops@example.org]", '"ops@example.org\\nBcc: x@y"]'))
    result = cli("run", book)
    assert result.code == 4 and "a line break in a mail header" in result.err, result.err
    monkeypatch.setenv("HOOK_TOKEN", "tok-123\r\nX-Injected: 1")
    book = notify_only(
        tmp_path,
        """webhook:
  url: http://127.0.0.1:9/hook
  headers: {Authorization: "Bearer {{ env.HOOK_TOKEN }}"}""",
    )
    result = cli("run", book)
    assert result.code == 4 and "line break" in result.err, result.err
    assert "tok-123" not in result.err + result.out


# What a notification says: why the run failed, where to look.


def mail_params(port: int) -> str:
    return (
        "email:\n  smtp_host: 127.0.0.1\n"
        f"  smtp_port: {port}\n  security: none\n"
        "  from: postsync@example.org\n  to: [ops@example.org]\n"
    )


@pytest.fixture(scope="module")
def password_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server that checks passwords (the session's takes any)."""
    try:
        server = start_server(auth="scram-sha-256")
    except ServerUnavailable as exc:
        missing("PostgreSQL", exc)
    try:
        yield server
    finally:
        server.stop()


def test_a_wrong_database_password_is_told_in_the_subject_the_mail_and_the_body(
    tmp_path: Path,
    area: Path,
    cli: CLI,
    smtp: tuple[Inbox, int],
    hook: tuple[list[dict[str, Any]], int],
    password_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inbox, smtp_port = smtp
    received, hook_port = hook
    wrong = "wrong-pg-pass-4242"
    monkeypatch.setenv("MOODLE_DB_PASSWORD", wrong)
    (area / "users.csv").write_text("username;firstname;lastname\nu1;A;One\n")
    database = (
        "postgresql+psycopg://postgres:{{ env.MOODLE_DB_PASSWORD }}"
        f"@127.0.0.1:{password_server.port}/postgres"
    )
    webhook = f"webhook: {{url: 'http://127.0.0.1:{hook_port}/ok'}}"
    book = tmp_path / "playbook.yml"
    book.write_text(
        f"""name: Nightly
area: area
database: "{database}"
sync:
  - name: users from the SIS
    command: users
    file: users.csv
post_treatments:
  - name: tell ops
    when: run.failed
    notify:
{textwrap.indent(mail_params(smtp_port) + webhook, "      ")}
"""
    )
    result = cli("run", book)
    assert result.code == 3, result.out + result.err
    cause = 'password authentication failed for user "postgres"'
    assert "FAILED   users from the SIS  (database error: " in result.out and cause in result.out
    assert "CHANGED  tell ops  (2 notifications)" in result.out
    (message,) = inbox.messages
    subject, text = parsed(message)
    # the message's start and its cause, cut in between to keep the subject short
    assert subject.startswith(f"postsync Nightly on {HOST}: 1 step failed (users from the SIS: ")
    assert subject.endswith(f" ... failed: FATAL: {cause})") and len(subject) <= 200
    (failed,) = [line for line in text.splitlines() if line.startswith("FAILED")]
    assert failed.startswith("FAILED   users from the SIS  (database error: connection failed: ")
    assert failed.endswith(f"{cause})")
    assert "record:" not in text  # nothing applied, no record
    (post,) = received
    body = post["body"]
    assert set(body) == {
        "run_id",
        "playbook",
        "host",
        "area",
        "record",
        "check",
        "started",
        "failed",
        "headline",
        "problems",
        "recap",
        "steps",
        "control_files",
    }
    assert text.startswith(f"postsync run {body['run_id']} of Nightly on {HOST}: 1 step failed")
    assert (body["playbook"], body["host"], body["area"]) == ("Nightly", HOST, str(area))
    assert body["record"] is None and body["check"] is False and body["failed"] is True
    assert subject.endswith(body["headline"])
    (step,) = body["steps"]
    assert (step["name"], step["status"], step["detail"]) == ("users from the SIS", "failed", "")
    assert step["error"].startswith("database error: connection failed: ")
    assert step["error"].endswith(cause)
    assert body["control_files"] == []
    for out in (result.out, result.err, message.content.decode(), json.dumps(body)):
        assert wrong not in out


def test_failed_lines_are_told_by_number_and_message_never_with_a_password(
    tmp_path: Path,
    area: Path,
    cli: CLI,
    smtp: tuple[Inbox, int],
    hook: tuple[list[dict[str, Any]], int],
) -> None:
    inbox, smtp_port = smtp
    received, hook_port = hook
    database = f"sqlite:///{tmp_path / 'moodle.db'}"
    assert cli("db", "init", database, "--demo").code == 0
    passwords = ["Hunter2-Secret-77", "Other-Pass-9901", *(f"Pass-Word-{n}-xyz" for n in range(5))]
    lines = [
        "u1;U1;A;One;manual;Good-Pass-1111",
        f"u2;U2;B;Two;ldap;{passwords[0]}",  # ldap is not enabled on the demo site
        f"u3;U3;C;Three;manual;{passwords[1]};one value too many",
        *(f"x{n};X{n};D;Four;nologin_x;{passwords[2 + n]}" for n in range(5)),
    ]
    header = "username;idnumber;firstname;lastname;auth;password\n"
    (area / "users.csv").write_text(header + "\n".join(lines) + "\n")
    sync = f"database: {database}\nsync:\n  - {{command: users, file: users.csv}}\n"
    book = notify_only(
        tmp_path,
        mail_params(smtp_port) + f"webhook: {{url: 'http://127.0.0.1:{hook_port}/ok'}}",
        sync,
    )
    result = cli("run", book)
    assert result.code == 2, result.out + result.err  # lines failed, the notifications went
    (record,) = (area / ".postsync" / "runs").glob("*.json")
    (message,) = inbox.messages
    subject, text = parsed(message)
    assert subject == f"postsync Notify alone on {HOST}: 7 lines failed"
    (post,) = received
    body = post["body"]
    assert body["record"] == str(record) and body["headline"] == "7 lines failed"
    assert record.name == f"{body['run_id']}.json"
    (users,) = body["control_files"]
    report = users["report"]
    assert report and Path(report).is_file() and Path(report).parent == record.with_suffix("")
    not_enabled = "is not an enabled authentication plugin of the site (enabled: manual, nologin)"
    assert users["failed_lines"] == 7
    assert users["first_failed_lines"] == [
        {"line": 3, "message": f"auth ldap {not_enabled}"},
        {"line": 4, "message": "7 values for 6 columns"},
        *({"line": n, "message": f"auth nologin_x {not_enabled}"} for n in (5, 6, 7)),
    ]
    assert f"record: {record}\n" in text
    assert (
        f"users.csv (users): 8 lines: 1 changed, 0 unchanged, 7 failed\n  report: {report}\n"
        f"  line 3: auth ldap {not_enabled}\n  line 4: 7 values for 6 columns\n"
    ) in text
    assert (
        f"  line 7: auth nologin_x {not_enabled}\n  and 2 more failed lines: see the report\n"
        in (text)
    )
    written = [record.read_text(), Path(report).read_text()]
    for out in (result.out, result.err, subject, text, json.dumps(body), *written):
        for password in passwords:
            assert password not in out, (password, out)


def test_the_default_subject_says_ok_and_a_given_subject_wins(
    tmp_path: Path, area: Path, cli: CLI, smtp: tuple[Inbox, int]
) -> None:
    inbox, smtp_port = smtp
    book = notify_only(tmp_path, mail_params(smtp_port))
    assert cli("run", book).code == 0
    assert parsed(inbox.messages[-1])[0] == f"postsync Notify alone on {HOST}: ok"
    # a subject of the playbook's, from what templates see of the failed steps
    (area / "archives").write_text("a file, not a directory")
    given = (
        "  subject: \"[{{ run.host }}] {{ run.errors.items() | map('join', ': ') | join('; ') }}\""
    )
    book.write_text(
        f"""name: Notify test
area: area
post_treatments:
  - name: purge
    purge_old_files: {{paths: [archives], older_than_days: 30}}
  - name: tell ops
    notify:
{textwrap.indent(mail_params(smtp_port) + given, "      ")}
"""
    )
    result = cli("run", book)
    assert result.code == 3, result.out + result.err
    assert parsed(inbox.messages[-1])[0] == f"[{HOST}] purge: archives is not a directory"


@pytest.fixture
def scripted() -> Iterator[Callable[[list[int]], tuple[list[Request], int]]]:
    """HTTP servers on loopback answering each POST with the next status of their list
    (the last one again once it ran out), keeping each request."""
    servers: list[ThreadingHTTPServer] = []

    def start(answers: list[int]) -> tuple[list[Request], int]:
        requests: list[Request] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                requests.append(Request(dict(self.headers), body, time.monotonic()))
                self.send_response(answers[min(len(requests), len(answers)) - 1])
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return requests, server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@dataclass
class Request:
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it came


def test_a_5xx_answer_is_retried_with_a_growing_wait(
    tmp_path: Path, area: Path, cli: CLI, scripted: Callable[[list[int]], tuple[list[Request], int]]
) -> None:
    requests, port = scripted([503, 503, 204])
    book = notify_only(tmp_path, f"webhook: {{url: 'http://127.0.0.1:{port}/hook'}}")
    result = cli("run", book)
    assert result.code == 0, result.out + result.err
    assert "CHANGED  tell ops  (1 notification)" in result.out
    assert f"post http://127.0.0.1:{port}/hook  (the run's summary (JSON), after 3 attempts)" in (
        result.out
    )
    assert len(requests) == 3 and len({r.body for r in requests}) == 1
    waits = [b.at - a.at for a, b in itertools.pairwise(requests)]
    assert 0.5 <= waits[0] < waits[1] and waits[1] >= 1.0, waits


def test_a_webhook_that_keeps_failing_fails_within_timeout_seconds(
    tmp_path: Path,
    area: Path,
    cli: CLI,
    scripted: Callable[[list[int]], tuple[list[Request], int]],
    raw_servers: Callable[..., RawServer],
) -> None:
    requests, port = scripted([503])
    book = notify_only(
        tmp_path, f"webhook: {{url: 'http://127.0.0.1:{port}/x', timeout_seconds: 3}}"
    )
    start = time.monotonic()
    result = cli("run", book)
    took = time.monotonic() - start
    assert result.code == 3, result.out + result.err
    # tries at 0, 0.5 and 1.5 s; a fourth after 2 s more would leave no time to answer
    assert len(requests) == 3 and took < 3.5, (len(requests), took)
    assert (
        f"webhook http://127.0.0.1:{port}/x: HTTP 503 Service Unavailable"
        " (3 attempts within timeout_seconds 3))"
    ) in result.out
    # nothing listening: a connection refused is retried too
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    book = notify_only(
        tmp_path, f"webhook: {{url: 'http://127.0.0.1:{closed}/x', timeout_seconds: 2}}"
    )
    result = cli("run", book)
    assert result.code == 3, result.out + result.err
    assert "Connection refused (2 attempts within timeout_seconds 2))" in result.out
    # a connection closed before the answer, then an answer
    seen = []

    def hang_up_once(conn: socket.socket, stop: threading.Event) -> None:
        seen.append(conn.recv(65536))
        if len(seen) > 1:
            conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")

    server = raw_servers(hang_up_once)
    book = notify_only(tmp_path, f"webhook: {{url: 'http://127.0.0.1:{server.port}/x'}}")
    result = cli("run", book)
    assert result.code == 0 and "after 2 attempts" in result.out, result.out + result.err
    assert server.connections == 2


@pytest.mark.parametrize(("status", "reason"), [(404, "Not Found"), (400, "Bad Request")])
def test_a_4xx_answer_is_not_retried(
    tmp_path: Path,
    area: Path,
    cli: CLI,
    scripted: Callable[[list[int]], tuple[list[Request], int]],
    status: int,
    reason: str,
) -> None:
    requests, port = scripted([status, 204])
    book = notify_only(tmp_path, f"webhook: {{url: 'http://127.0.0.1:{port}/x'}}")
    result = cli("run", book)
    assert result.code == 3, result.out + result.err
    assert f"HTTP {status} {reason} (1 attempt))" in result.out
    assert len(requests) == 1


def verified(request: Request, key: bytes) -> bool:
    """What a receiver checks: the signature of the timestamp and the body it got, and a
    timestamp of now (not a replay)."""
    stamp = request.headers["X-Postsync-Timestamp"]
    if abs(time.time() - int(stamp)) > 300:
        return False
    digest = hmac.new(key, stamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(request.headers["X-Postsync-Signature"], f"sha256={digest}")


def test_the_webhook_body_is_signed_with_its_secret_never_shown(
    tmp_path: Path,
    area: Path,
    cli: CLI,
    scripted: Callable[[list[int]], tuple[list[Request], int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = "sign-key-0123456789abcdef"
    monkeypatch.setenv("HOOK_KEY", key)
    requests, port = scripted([503, 204])
    database = f"sqlite:///{tmp_path / 'moodle.db'}"
    assert cli("db", "init", database, "--demo").code == 0
    (area / "enrols.csv").write_text("cmd;cid;uid;rolename\nadd;MATH101;U0001;student\n")
    sync = f"database: {database}\nsync:\n  - {{command: enrolments, file: enrols.csv}}\n"
    book = notify_only(
        tmp_path,
        f'webhook:\n  url: http://127.0.0.1:{port}/x\n  secret: "{{{{ env.HOOK_KEY }}}}"',
        sync,
    )
    outputs = []
    for args in (("--check",), ("--check", "--output", "json"), ()):
        result = cli("run", book, *args)
        assert result.code == 0, result.out + result.err
        outputs += [result.out, result.err]
    assert "(the run's summary (JSON), signed)" in outputs[0]
    assert "(the run's summary (JSON), signed, after 2 attempts)" in outputs[-2]
    assert len(requests) == 2  # a preview sends nothing
    for request in requests:  # each attempt signed
        assert verified(request, key.encode())
        assert not verified(request, b"another-key-0123456789")
        assert not verified(Request(request.headers, request.body + b" ", 0), key.encode())
    assert json.loads(requests[-1].body)["control_files"][0]["path"] == "enrols.csv"
    records = [p.read_text() for p in (area / ".postsync").rglob("*") if p.is_file()]
    assert records
    for out in outputs + records:
        assert key not in out


def test_a_short_signing_secret_or_a_signature_header_is_refused(
    tmp_path: Path, area: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_KEY", "tiny-key-7")
    book = notify_only(
        tmp_path, 'webhook:\n  url: http://127.0.0.1:9/x\n  secret: "{{ env.HOOK_KEY }}"'
    )
    for args in ((), ("--check",)):
        result = cli("run", book, *args)
        assert result.code == 4, result.out + result.err
        assert "playbook.yml:8:" in result.err and "webhook.secret" in result.err
        assert "renders to 10 characters: a signing key needs at least 16" in result.err
        assert "tiny-key-7" not in result.out + result.err
    book = notify_only(
        tmp_path, "webhook:\n  url: http://127.0.0.1:9/x\n  headers: {X-Postsync-Signature: x}"
    )
    result = cli("run", book)
    assert result.code == 4 and "X-Postsync-Signature is set by postsync" in result.err


def test_a_sync_step_whose_record_cannot_be_saved_is_told_as_failed(
    tmp_path: Path, hook: tuple[list[dict[str, Any]], int]
) -> None:
    """The disk fills as the record is saved after the sync: the step fails after it
    ended, and the notification tells it so (a fault injected in a postsync process of
    its own, at the third file written: the first is the file's report, the second
    the run's change journal)."""
    received, port = hook

    def run(root: Path, faults: str) -> subprocess.CompletedProcess[str]:
        (root / "area").mkdir(parents=True)
        (root / "area" / "enrols.csv").write_text(
            "cmd;cid;uid;rolename\nadd;MATH101;U0001;student\n"
        )
        database = f"sqlite:///{root / 'moodle.db'}"
        assert postsync_process("db", "init", database, "--demo").returncode == 0
        book = root / "playbook.yml"
        book.write_text(
            f"name: Full disk\narea: area\ndatabase: {database}\n"
            "sync:\n  - {name: enrolments, command: enrolments, file: enrols.csv}\n"
            "post_treatments:\n  - name: tell ops\n"
            f"    notify: {{webhook: {{url: 'http://127.0.0.1:{port}/ok'}}}}\n"
        )
        return postsync_process("run", book, env={"POSTSYNC_FAULTS": faults})

    trace = tmp_path / "trace.txt"
    assert run(tmp_path / "probe", f"trace={trace}").returncode == 0
    points = [line.split() for line in trace.read_text().splitlines()]
    saved = [int(n) for n, name in points if name == "atomic.written"][2]
    result = run(tmp_path / "full", f"enospc={saved}")
    assert result.returncode == 3, result.stdout + result.stderr
    error = "cannot save the run record: No space left on device"
    assert f"FAILED   enrolments  ({error})" in result.stdout
    body = received[-1]["body"]
    assert body["steps"][0] == {
        "name": "enrolments",
        "status": "failed",
        "detail": "1 file, 1 line",
        "error": error,
    }
    assert body["headline"] == f"1 step failed (enrolments: {error})"
