"""Kill a full nightly run with SIGKILL at every fault point, re-run, and check that
nothing is lost and the re-run converges to the state of an uninterrupted run.

The points (runner/core/faults.py) sit inside the sync's transactions and between them,
around every atomic write (written, synced, published), around every deletion, in the
group cleanup's transaction and between steps. The uninterrupted run is traced to
count them; each trial kills a fresh copy of the workspace at one of them.
"""

from __future__ import annotations

import json
import re
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from runner.record.schema import record_schema
from tests.reliability import workspace as ws

#: trials run two at a time (the machines have two cores)
WORKERS = 2


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("crash")
    template = ws.build_template(root)
    before = ws.course_states(template)
    done = ws.copy(template, root / "reference")
    trace = root / "trace.txt"
    result = ws.run(done, faults=f"trace={trace}")
    assert result.returncode == 2, result.stdout + result.stderr
    points = [line.split()[1] for line in trace.read_text().splitlines()]
    again = ws.run(done)
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout
    return {
        "root": root,
        "template": template,
        "points": points,
        "before": before,
        "after": ws.course_states(done),
        "groups": ws.groups(done),
        "files": ws.files(done / "area", skip=(".postsync", "reports")),
        "reports": sorted(ws.files(done / "area" / "reports")),
    }


def check_nothing_lost(area: Path, reference: dict[str, object]) -> None:
    """Every control file is in the area or archived, byte for byte; every file under a
    final name is complete."""
    originals = ws.control_files()
    final: dict[str, bytes] = reference["files"]  # type: ignore[assignment]
    present = ws.files(area, skip=(".postsync",))
    for name, content in originals.items():
        archived = present.get(f"archives/{ws.STAMP}_{name}")
        assert present.get(name) == content or archived == content, f"{name} lost"
    for rel, content in present.items():
        name = rel.rsplit("/", 1)[-1]
        if name.startswith("."):
            continue  # a temporary file: never under a final name
        if rel.startswith("archives/") and not rel.startswith("archives/2026080"):
            assert content in originals.values(), f"{rel} is not a complete archive"
        elif "_tryback_" in rel:
            assert content == final[rel], f"{rel} is not the complete retry file"
        elif rel.startswith("reports/"):
            text = content.decode()
            source = originals[re.sub(r"\.\d+(\.csv)$", r"\1", rel.split("_report_", 1)[1])]
            data_lines = len(source.splitlines()) - 1
            assert text.endswith("\n") and len(text.splitlines()) == 3 + data_lines, rel
    for record in (area / ".postsync" / "runs").glob("*.json"):
        Draft202012Validator(record_schema()).validate(json.loads(record.read_text()))


def check_files_all_or_nothing(workspace: Path, reference: dict[str, object]) -> None:
    before: dict[str, ws.CourseState] = reference["before"]  # type: ignore[assignment]
    after: dict[str, ws.CourseState] = reference["after"]  # type: ignore[assignment]
    now = ws.course_states(workspace)
    for name, course in ws.COURSES.items():
        assert now[course] in (before[course], after[course]), f"{name} half applied"


def trial(reference: dict[str, object], kill_at: int) -> str:
    root: Path = reference["root"]  # type: ignore[assignment]
    space = ws.copy(reference["template"], root / f"kill{kill_at}")  # type: ignore[arg-type]
    killed = ws.run(space, faults=f"kill={kill_at}")
    assert killed.returncode == -signal.SIGKILL, (kill_at, killed.stdout, killed.stderr)
    check_nothing_lost(space / "area", reference)
    check_files_all_or_nothing(space, reference)
    rerun = ws.run(space)
    assert rerun.returncode in (0, 2), (kill_at, rerun.stdout, rerun.stderr)
    check_nothing_lost(space / "area", reference)
    # converged: the database and the files are those of an uninterrupted run
    assert ws.course_states(space) == reference["after"], kill_at
    assert ws.groups(space) == reference["groups"], kill_at
    assert ws.files(space / "area", skip=(".postsync", "reports")) == reference["files"]
    reports = set(ws.files(space / "area" / "reports"))
    missing = {r for r in reference["reports"] if r not in reports}  # type: ignore[attr-defined]
    assert not missing, (kill_at, missing)
    return ""


def test_kill_at_every_point_loses_nothing_and_converges(reference: dict[str, object]) -> None:
    points: list[str] = reference["points"]  # type: ignore[assignment]
    kinds = set(points)
    assert len(points) >= 100, f"only {len(points)} kill points"
    for kind in ("sync.batch", "sync.commit", "sync.committed", "atomic.synced"):
        assert kind in kinds
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(lambda k: trial(reference, k), range(1, len(points) + 1)))
    print(f"survived {len(points)} kill points: " + ", ".join(sorted(kinds)))
