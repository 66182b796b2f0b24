"""The Moodle lab suite: skipped, with the reason, unless a Moodle source is given
(tests/moodle/README.md); `tox -e moodle` runs it and writes tests/moodle/RESULTS.md."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.moodle.lab import Lab, LabUnavailable, Site, lab_root, source

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
_names = itertools.count()
_outcomes: list[tuple[str, str, str]] = []
_release: list[str] = []


@pytest.fixture(scope="session")
def lab() -> Lab:
    try:
        source()
    except LabUnavailable as exc:
        pytest.skip(str(exc))  # also under CI: a fresh machine has no Moodle snapshot
    built = Lab(lab_root()).ensure()
    _release.append(built.release())
    return built


@pytest.fixture
def site(lab: Lab) -> Iterator[Site]:
    """A fresh clone of the seeded site for one test."""
    yield lab.clone(f"t{os.getpid()}_{next(_names)}")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "tests/moodle/" not in report.nodeid:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        reason = ""
        outcome = report.outcome
        if hasattr(report, "wasxfail"):  # a known difference, to be fixed
            outcome, reason = "known", f"known difference: {report.wasxfail}"
        elif report.outcome == "failed":
            crash = getattr(report.longrepr, "reprcrash", None)
            text = crash.message if crash is not None else str(report.longrepr)
            reason = " ".join(text.split())[:300].replace("|", "\\|")
        elif report.outcome == "skipped" and isinstance(report.longrepr, tuple):
            reason = str(report.longrepr[2])
        _outcomes.append((report.nodeid.split("::")[-1], outcome, reason))


def _doc(name: str, items: list[Any]) -> str:
    for item in items:
        if item.name == name and item.function.__doc__:
            return " ".join(item.function.__doc__.split())
    return ""


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not os.environ.get("POSTSYNC_MOODLE_RESULTS") or not _release:
        return  # only `tox -e moodle` writes the results, and only when the lab ran
    items = list(session.items)
    lines = [
        "# postsync on a real Moodle: results",
        "",
        "Written by `tox -e moodle` (tests/moodle/): each check on a fresh clone of the seeded",
        "site, postsync run through its CLI against the site's PostgreSQL database, then a PHP",
        "process asking Moodle's own API.",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Moodle: {_release[0]}",
        "",
        "| check | held | what it checks | detail |",
        "|---|---|---|---|",
    ]
    for name, outcome, reason in _outcomes:
        held = {"passed": "yes", "failed": "**no**", "known": "**no**"}.get(outcome, outcome)
        lines.append(f"| `{name}` | {held} | {_doc(name, items)} | {reason} |")
    RESULTS.write_text("\n".join(lines) + "\n")


@pytest.fixture
def lab_twin(lab: Lab) -> Site:
    """A second fresh clone: the same change done through Moodle's API, to compare."""
    return lab.clone(f"t{os.getpid()}_{next(_names)}")
