"""B1: startup (`postsync validate`, `postsync --version`)."""

from __future__ import annotations

from pathlib import Path

from bench.harness import POSTSYNC, PY, ROOT, Result, alternate, timed

#: postsync's modules compiled to bytecode, as `pip install` does: a checkout installed
#: as editable, where PYTHONDONTWRITEBYTECODE is set, would compile them from source at
#: every start (about 80 ms of 0.3 s), which the baseline's libraries never do
COMPILE = (
    "import compileall, os, runner;"
    " compileall.compile_dir(os.path.dirname(runner.__file__), quiet=1)"
)


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
    r.notes.append("postsync's modules compiled to bytecode first, as an install does")
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
