"""The sync tests' Moodle site fixtures."""

from __future__ import annotations

from tests.sync.conftest import db_url, site  # noqa: F401  (pytest fixtures)
