"""Two real runs started together on one area: one runs, the other exits 6 having
changed nothing; with --lock-wait the other waits its turn and finds the work done."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.conftest import POSTSYNC
from tests.reliability import workspace as ws


def start(space: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "POSTSYNC_FAULTS": "sleep=step.done:2"}  # hold the lock a while
    return subprocess.Popen(
        [*POSTSYNC, "run", "playbook.yml", "-e", f"stamp={ws.STAMP}", *args],
        cwd=space,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_runs_together_one_exits_6(tmp_path: Path) -> None:
    template = ws.build_template(tmp_path)
    reference = ws.copy(template, tmp_path / "reference")
    assert ws.run(reference).returncode == 2
    space = ws.copy(template, tmp_path / "space")
    runs = [start(space), start(space)]
    results = [(r, *r.communicate(timeout=300)) for r in runs]
    codes = sorted(r.returncode for r, _, _ in results)
    assert codes == [2, 6], [(r.returncode, out, err) for r, out, err in results]
    (loser,) = [(out, err) for r, out, err in results if r.returncode == 6]
    assert "another run holds the lock" in loser[1]
    assert "nothing was changed" in loser[1]
    assert loser[0] == ""  # no step ran
    # the area and the database are exactly those of one run
    skip = (".postsync", "reports")
    assert ws.files(space / "area", skip=skip) == ws.files(reference / "area", skip=skip)
    assert ws.course_states(space) == ws.course_states(reference)


def test_lock_wait_runs_after_the_first(tmp_path: Path) -> None:
    space = ws.copy(ws.build_template(tmp_path), tmp_path / "space")
    first = start(space)
    lock = space / "area" / ".postsync" / "lock"
    deadline = time.monotonic() + 60
    while not (lock.exists() and lock.read_text()):  # the first run holds the lock
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.02)
    second = start(space, "--lock-wait", "120")
    out1, _ = first.communicate(timeout=300)
    out2, err2 = second.communicate(timeout=300)
    assert "waiting up to 120s for the lock" in err2
    assert first.returncode == 2, out1
    assert second.returncode == 0, out2  # the control files were processed by the first
    assert "changed=0" in out2
