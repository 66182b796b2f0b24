"""The Moodle lab suite: skipped, with the reason, unless a Moodle source is given
(tests/moodle/README.md); `tox -e moodle` runs it and writes tests/moodle/RESULTS.md."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.moodle import results
from tests.moodle.lab import Lab, LabUnavailable, Site, lab_root, source

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
_names = itertools.count()
_outcomes: list[tuple[str, str, str]] = []
_labs: list[Lab] = []


@pytest.fixture(scope="session")
def lab() -> Lab:
    try:
        built = Lab(lab_root(), source()).ensure()
    except LabUnavailable as exc:
        pytest.skip(str(exc))  # also under CI: a fresh machine has no Moodle snapshot
    _labs.append(built)
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
    if not os.environ.get("POSTSYNC_MOODLE_RESULTS") or not _labs:
        return  # only `tox -e moodle` writes the results, and only when the lab ran
    lab = _labs[0]
    items = list(session.items)
    held = {"passed": "yes", "failed": "**no**", "known": "**no**"}
    outcomes = [
        (name, held.get(outcome, outcome), _doc(name, items), reason)
        for name, outcome, reason in _outcomes
    ]
    results.write(RESULTS, lab.release, results.section(lab.release, lab.facts(), outcomes))


@pytest.fixture
def lab_twin(lab: Lab) -> Site:
    """A second fresh clone: the same change done through Moodle's API, to compare."""
    return lab.clone(f"t{os.getpid()}_{next(_names)}")
