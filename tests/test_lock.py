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

from tests.conftest import HOUSEKEEPING, POSTSYNC, make_file, snapshot, write_playbook

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
        [*POSTSYNC, *map(str, args)],
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


MOUNTS = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
40 27 0:50 / /srv/moodledata rw,relatime - nfs4 files:/export rw,vers=4.2,local_lock=none
41 40 0:51 / /srv/moodledata/sync rw,relatime - nfs files:/sync rw,vers=3,nolock
42 27 0:52 / /mnt/with\\040space rw - fuse.sshfs host:/x rw,user_id=0
43 27 0:53 / /mnt/smb rw - cifs //h/s rw,nobrl
"""


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/srv/moodledata/sync/feeds", "nfs mounted with nolock"),
        ("/srv/moodledata/other", None),  # NFSv4 with its own locks: they hold across hosts
        ("/mnt/with space/area", "fuse.sshfs, whose locks stay on this host"),
        ("/mnt/smb/area", "cifs mounted with nobrl"),
        ("/home/area", None),
        ("/srv/moodledata/syncing", None),  # a sibling of the nolock mount, not inside it
    ],
)
def test_an_area_whose_locks_stay_local_is_named(
    tmp_path: Path, path: str, why: str | None
) -> None:
    from runner.engine.lock import local_locks

    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTS)
    assert local_locks(Path(path), mountinfo) == why


def test_the_run_warns_when_the_areas_locks_stay_local(
    tmp_path: Path, area: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import runner.engine.lock
    from runner.cli.main import main

    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"27 1 8:1 / {tmp_path} rw - nfs files:/x rw,vers=3,local_lock=all\n")
    monkeypatch.setattr(runner.engine.lock, "MOUNTINFO", mountinfo)
    assert main(["run", str(write_playbook(tmp_path, HOUSEKEEPING))]) == 0
    err = capsys.readouterr().err
    assert f"postsync: warning: {area} is on nfs mounted with local_lock=all: its lock" in err
