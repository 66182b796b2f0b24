"""The enrolments sync command (command.py)."""

from __future__ import annotations

from runner.sync.enrolments.command import Enrolments

__all__ = ["Enrolments"]
