"""One run per area: exit 6 while another run holds the lock, --lock-wait, stale locks,
and SIGINT/SIGTERM -> 130. These start real processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import HOUSEKEEPING, make_file, snapshot, write_playbook

HOLDER = """
import sys, time
from pathlib import Path
from runner.engine.lock import area_lock
with area_lock(Path(sys.argv[1]), "holder-run"):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def postsync(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "runner", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def hold(area: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the area's lock for up to 60 s."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(area), "60"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "locked\n"
    yield holder
    holder.kill()
    holder.wait()


@pytest.fixture
def playbook(tmp_path: Path, area: Path) -> Path:
    make_file(area / "archives" / "old.csv", days=100)
    return write_playbook(tmp_path, HOUSEKEEPING)


def test_locked_area_exits_6_and_changes_nothing(
    playbook: Path, area: Path, hold: subprocess.Popen[str]
) -> None:
    before = snapshot(area)
    _, err = postsync("run", playbook).communicate(timeout=30)
    assert err == (
        f"postsync: another run holds the lock on {area} (pid {hold.pid},"
        " run holder-run); nothing was changed (use --lock-wait SECONDS to wait)\n"
    )
    assert snapshot(area) == before


def test_exit_code_is_6(playbook: Path, hold: subprocess.Popen[str]) -> None:
    run = postsync("run", playbook, "--check")
    run.communicate(timeout=30)
    assert run.returncode == 6


def test_lock_wait_gives_up_after_the_delay(playbook: Path, hold: subprocess.Popen[str]) -> None:
    started = time.monotonic()
    run = postsync("run", playbook, "--lock-wait", "1")
    _, err = run.communicate(timeout=30)
    assert run.returncode == 6
    assert time.monotonic() - started >= 1
    assert "after waiting 1s" in err


def test_lock_wait_runs_once_the_lock_is_free(playbook: Path, area: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(area), "1"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "locked\n"
    run = postsync("run", playbook, "--lock-wait", "30")
    out, err = run.communicate(timeout=60)
    holder.wait()
    assert run.returncode == 0, err
    assert "delete archives/old.csv" in out
    assert not (area / "archives" / "old.csv").exists()


def test_lock_of_a_killed_run_does_not_block(
    playbook: Path, area: Path, hold: subprocess.Popen[str]
) -> None:
    hold.send_signal(signal.SIGKILL)
    hold.wait()
    assert (area / ".postsync" / "lock").exists()
    run = postsync("run", playbook)
    _, err = run.communicate(timeout=30)
    assert run.returncode == 0, err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_exits_128_plus_its_number(
    signum: int, playbook: Path, area: Path, hold: subprocess.Popen[str]
) -> None:
    before = snapshot(area)
    run = postsync("run", playbook, "--lock-wait", "60")
    assert run.stderr is not None
    assert run.stderr.readline().startswith(f"postsync: waiting up to 60s for the lock on {area}")
    run.send_signal(signum)
    _, err = run.communicate(timeout=30)
    assert run.returncode == 128 + signum  # 143 SIGTERM, 130 SIGINT
    word = "terminated" if signum == signal.SIGTERM else "interrupted"
    assert err.endswith(f"postsync: {word}\n")
    assert "Traceback" not in err
    assert snapshot(area) == before


PREVIEW_HOLDER = """
import sys, time
from pathlib import Path
from runner.engine.lock import area_lock
with area_lock(Path(sys.argv[1]), "preview", shared=True):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_previews_share_the_lock_and_keep_runs_out(playbook: Path, area: Path) -> None:
    assert postsync("run", playbook, "--check").wait(timeout=30) == 0  # no lock file yet
    assert not (area / ".postsync").exists()
    assert postsync("run", playbook, "--tags", "never").wait(timeout=30) == 0  # makes it
    holder = subprocess.Popen(
        [sys.executable, "-c", PREVIEW_HOLDER, str(area), "60"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        lock = area / ".postsync" / "lock"
        before = lock.stat()
        preview = postsync("run", playbook, "--check")
        preview.communicate(timeout=30)
        assert preview.returncode == 0  # previews at once
        run = postsync("run", playbook)
        _, err = run.communicate(timeout=30)
        assert run.returncode == 6
        assert f"another run holds the lock on {area} (a preview)" in err
        after = lock.stat()
        assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)
    finally:
        holder.kill()
        holder.wait()
