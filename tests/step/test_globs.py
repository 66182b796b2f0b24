"""ControlGlob answers for one path exactly what the sync's glob.glob listing does."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

import pytest

from runner.step.globs import ControlGlob, feed_name

NAMES = [
    "enrols.csv",
    "enrols_1.csv",
    ".enrols.csv",
    "members.csv",
    "e.CSV",
    "sub/enrols.csv",
    "enrols[1].csv",
    # retry files: of enrols.csv (twice, one with on_conflict's .1), of enrols_1.csv, of
    # members.csv, of sub/enrols.csv, of a hidden file, of a file that is not there
    "enrols_tryback_1.csv",
    "enrols_tryback_2.1.csv",
    "enrols_1_tryback_3.csv",
    "members_tryback_4.csv",
    "sub/enrols_tryback_5.csv",
    ".enrols_tryback_6.csv",
    "other_tryback_7.txt",
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
    "enrols_*.csv",
]


def _globbed(root: Path, pattern: str, relative: str) -> bool:
    """Whether glob.glob(pattern) under `root` lists `relative`, were it a file there:
    asked of glob itself, in a scratch copy of the tree holding that one file."""
    scratch = root / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / relative).parent.mkdir(parents=True, exist_ok=True)
    (scratch / relative).touch()
    rule = ControlGlob.of(str(scratch), pattern, include_retry=False)
    return os.path.normpath(str(scratch / relative)) in {
        os.path.normpath(p) for p in glob.glob(rule.pattern)
    }


def expected(root: Path, pattern: str, include_retry: bool) -> set[str]:
    """What the step reads, by the rule: what glob lists, retry files only when the
    pattern names them, or (include_retry_files) when glob would list their feed's."""
    found = set()
    for name in NAMES:
        base = os.path.basename(name)
        if "_tryback_" not in base or "_tryback_" in pattern:
            if _globbed(root, pattern, name):
                found.add(name)
        elif include_retry:
            feed = feed_name(base)
            assert feed is not None
            if _globbed(root, pattern, os.path.join(os.path.dirname(name), feed)):
                found.add(name)
    return found


@pytest.mark.parametrize("include_retry", [False, True])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_matches_is_what_glob_lists(tmp_path: Path, pattern: str, include_retry: bool) -> None:
    area = tmp_path / "a[x]*"  # glob characters in the area's own name
    (area / "sub").mkdir(parents=True)
    for name in NAMES:
        (area / name).touch()
    rule = ControlGlob.of(str(area), pattern, include_retry=include_retry)
    wanted = {str(area / n) for n in expected(tmp_path, pattern, include_retry)}
    listed = rule.listed()
    assert set(listed) == wanted
    assert {str(area / n) for n in NAMES if rule.matches(str(area / n))} == wanted
    assert listed or pattern in ("enrols[[]1].csv",)  # every pattern but one finds a file
    # retry files first (an earlier feed's lines), then the feed's own, in name order
    retries = [p for p in listed if rule.is_retry(p)]
    assert listed == sorted(retries) + sorted(set(listed) - set(retries))


def test_retry_files_are_read_only_with_include_retry_files(tmp_path: Path) -> None:
    area = str(tmp_path)
    plain = ControlGlob.of(area, "enrols*.csv", include_retry=False)
    asked = ControlGlob.of(area, "enrols*.csv", include_retry=True)
    literal = ControlGlob.of(area, "enrols.csv", include_retry=True)
    retry = f"{area}/enrols_tryback_20261204-0230.csv"
    assert not plain.matches(retry)
    assert asked.matches(retry) and asked.is_retry(retry)
    assert literal.matches(retry)  # the step names its file: its retry files are its own
    assert not asked.matches(f"{area}/userimport_tryback_20261204-0230.csv")  # another feed's
    named = ControlGlob.of(area, "enrols_tryback_*.csv", include_retry=False)
    assert named.matches(retry) and not named.is_retry(retry)  # named: the step's feed


@pytest.mark.parametrize(
    ("name", "feed"),
    [
        ("enrols_tryback_20261204-0230.csv", "enrols.csv"),
        ("enrols_tryback_20261204-0230.1.csv", "enrols.csv"),
        ("enrols_tryback_A_tryback_B.csv", "enrols.csv"),
        ("enrols.v2_tryback_20261204-0230.csv", "enrols.v2.csv"),
        ("enrols_tryback_20261204-0230", "enrols"),
        ("enrols_tryback_20261204-0230.", "enrols"),
        ("_tryback_20261204-0230.csv", None),
        ("enrols.csv", None),
    ],
)
def test_feed_name(name: str, feed: str | None) -> None:
    assert feed_name(name) == feed
