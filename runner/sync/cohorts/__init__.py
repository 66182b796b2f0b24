"""The cohorts sync command: the class (command.py) and the cohorts and
memberships a batch touches (state.py)."""

from __future__ import annotations

from runner.sync.cohorts.command import Cohorts

__all__ = ["Cohorts"]
