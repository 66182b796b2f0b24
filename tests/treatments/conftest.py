"""The sync tests' Moodle site fixtures, for the treatments that act on what it did."""

from __future__ import annotations

from tests.sync.conftest import db_url, site  # noqa: F401  (pytest fixtures)
