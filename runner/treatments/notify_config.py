"""notify's rendered settings: what its plan carries to the sending
(runner/treatments/notify_send.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mail:
    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    subject: str
    security: str  # starttls | ssl | none
    username: str | None
    password: str | None
    timeout: int


@dataclass(frozen=True)
class Hook:
    url: str
    display: str  # the URL as printed: its secrets masked
    headers: tuple[tuple[str, str], ...]
    timeout: int
