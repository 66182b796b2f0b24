"""tests/moodle/RESULTS.md: one section per Moodle release, each written by a run of the
lab on that release (the others kept as they were), and an overview of them all."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

INTRO = """\
# postsync on a real Moodle: results

Written by `tox -e moodle` (tests/moodle/README.md): a run on one Moodle release writes
that release's section and keeps the others. Each check runs on a fresh clone of the
seeded site: postsync run through its CLI against the site's PostgreSQL database, then a
PHP process asking Moodle's own API.
"""
SECTION = re.compile(r"^## Moodle (\S+)", re.M)
ROW = re.compile(r"^\| `([^`]+)` \| ([^|]+) \|", re.M)


def _order(release: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", release))


def section(
    release: str, facts: Sequence[str], outcomes: Sequence[tuple[str, str, str, str]]
) -> str:
    """A release's section: its facts, then each check (name, held, doc, detail)."""
    lines = [f"## Moodle {release}", "", *(f"- {fact}" for fact in facts)]
    lines += [f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", ""]
    lines += ["| check | held | what it checks | detail |", "|---|---|---|---|"]
    lines += [f"| `{name}` | {held} | {doc} | {detail} |" for name, held, doc, detail in outcomes]
    return "\n".join(lines) + "\n"


def write(path: Path, release: str, text: str) -> None:
    """`text` as the section of `release` in the file at `path`."""
    old = path.read_text() if path.is_file() else ""
    found = list(SECTION.finditer(old))
    ends = [m.start() for m in found[1:]] + [len(old)]
    sections = {
        m.group(1): old[m.start() : end].rstrip() + "\n"
        for m, end in zip(found, ends, strict=False)
    }
    sections[release.split()[0]] = text
    releases = sorted(sections, key=_order)
    held = {r: dict(ROW.findall(sections[r])) for r in releases}
    checks = list(dict.fromkeys(name for r in releases for name in held[r]))
    overview = ["## Overview", "", "| check | " + " | ".join(releases) + " |"]
    overview.append("|---|" + "---|" * len(releases))
    for name in checks:
        cells = [held[r].get(name, "-").strip() for r in releases]
        overview.append(f"| `{name}` | " + " | ".join(cells) + " |")
    body = [INTRO, "\n".join(overview) + "\n", *(sections[r] for r in releases)]
    path.write_text("\n".join(body))
