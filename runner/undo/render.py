"""The undo's lines and notes (runner.undo.lines, runner.undo.people), in the order
their files are applied."""

from __future__ import annotations

from runner.undo.groups import groups
from runner.undo.lines import Written, enrolments, members
from runner.undo.people import cohorts, users
from runner.undo.plan import Plan
from runner.undo.site import Site


def render(plan: Plan, site: Site) -> Written:
    """The plan as lines and notes, in the order the files are applied."""
    out = Written()
    groups(plan, site, out)
    members(plan, site, out)
    enrolments(plan, site, out)
    cohorts(plan, site, out)
    users(plan, site, out)
    return out
