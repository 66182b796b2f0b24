"""ControlGlob answers for one path exactly what the sync's glob.glob listing does."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest

from runner.step.globs import ControlGlob

NAMES = [
    "enrols.csv",
    "enrols_1.csv",
    ".enrols.csv",
    "enrols_tryback_1.csv",
    "members.csv",
    "e.CSV",
    "sub/enrols.csv",
    "enrols[1].csv",
]
PATTERNS = [
    "enrols*.csv",
    "*.csv",
    "enrols.csv",
    "enrols_tryback_*.csv",
    "sub/*.csv",
    "*/*.csv",
    "e?rols.csv",
    "[em]*.csv",
    ".*.csv",
    "enrols[[]1].csv",
    "./enrols*.csv",
]


@pytest.mark.parametrize("include_retry", [False, True])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_matches_is_what_glob_lists(tmp_path: Path, pattern: str, include_retry: bool) -> None:
    area = tmp_path / "a[x]*"  # glob characters in the area's own name
    (area / "sub").mkdir(parents=True)
    for name in NAMES:
        (area / name).touch()
    rule = ControlGlob.of(str(area), pattern, include_retry=include_retry)
    listed = {
        os.path.normpath(p) for p in glob.glob(rule.pattern) if not rule.skips(os.path.basename(p))
    }
    asked = {str(area / n) for n in NAMES if rule.matches(str(area / n))}
    assert asked == listed
    assert listed or pattern in ("enrols[[]1].csv",)  # every pattern but one finds a file
