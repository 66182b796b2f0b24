"""notify through `postsync run`: a real SMTP server (aiosmtpd) and an HTTP server on
loopback, started here; `when:` on failures; the preview sends nothing; the password
and the webhook's headers are never printed; a server that is down fails the step."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLI

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
            received.append({"headers": dict(self.headers), "body": json.loads(body)})
            self.send_response(204 if self.path == "/ok" else 500)
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
    text = message.content.decode()
    assert "FAILED   purge" in text and "Subject: postsync " in text and ": FAILED" in text
    assert inbox.logins == [("postsync", "s3cr3t-pw")]
    (post,) = received
    assert post["headers"]["Authorization"] == "Bearer tok-123456"
    assert post["headers"]["Content-Type"] == "application/json"
    assert post["body"]["failed"] is True
    assert post["body"]["steps"][0] == {"name": "purge", "status": "failed"}
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
    assert "webhook http://127.0.0.1" in result.out and "HTTP 500" in result.out
    assert "wrong-pw" not in result.out and inbox.messages == []
