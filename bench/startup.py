"""B1: startup (`postsync validate`, `postsync --version`)."""

from __future__ import annotations

from pathlib import Path

from bench.harness import POSTSYNC, PY, ROOT, Result, alternate, timed


def b1(work: Path, rounds: int) -> list[Result]:
    nightly = str(ROOT / "playbooks" / "nightly.yml")
    r = Result("B1", "startup: `postsync validate` on the nightly example", "<= 2x", limit=2.0)
    alternate(
        rounds * 3,
        lambda: timed([*POSTSYNC, "validate", nightly], work),
        lambda: timed([PY, "-c", "import yaml, jinja2, jsonschema"], work),
        r,
    )
    r.extra["baseline"] = '`python -c "import yaml, jinja2, jsonschema"`'
    v = Result("B1v", "`postsync --version`", "< 0.15 s")
    alternate(
        rounds * 3,
        lambda: timed([*POSTSYNC, "--version"], work),
        lambda: timed([PY, "-c", "pass"], work),
        v,
    )
    v.extra["baseline"] = '`python -c "pass"`'
    v.notes.append(
        f"absolute median {v.ours_median:.3f} s: {'met' if v.ours_median < 0.15 else 'NOT met'}"
    )
    return [r, v]
