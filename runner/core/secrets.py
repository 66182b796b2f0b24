"""Secrets (database passwords) never printed: every password postsync parses out of a
database URL is registered here, and what postsync writes for people (output, errors,
crash logs, run records) goes through `redact`."""

from __future__ import annotations

_SECRETS: set[str] = set()
MASK = "***"


def register(secret: str | None) -> None:
    if secret and len(secret) >= 3:
        _SECRETS.add(secret)


def redact(text: str) -> str:
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, MASK)
    return text
