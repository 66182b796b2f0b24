"""A preview's pair states on disk (runner/step/spill.py): what a file kept is read back
by later batches, a rejected file's states are given back, and the temporary database
leaves nothing behind, even when the preview is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from runner.step.spill import CHUNK, PairStore


def test_states_are_kept_read_back_and_a_rejected_file_forgotten() -> None:
    store = PairStore()
    store.begin()
    store.put_all([((1, 10, 5), ((1, 2, 0, 0, 0), (), ())), ((1, 10, 6), ((), (), (3, None)))])
    store.commit()
    store.begin()
    store.put_all([((1, 10, 5), ((), ("x", "é"), ())), ((2, 20, 5), ((9,), (), ()))])
    assert store.get((1, 10, 5)) == ((), ("x", "é"), ())
    store.rollback()  # the file was rejected
    assert store.get((1, 10, 5)) == ((1, 2, 0, 0, 0), (), ())
    assert store.get((2, 20, 5)) is None
    assert sorted(store) == [(1, 10, 5), (1, 10, 6)]
    assert dict(store.items())[(1, 10, 6)] == ((), (), (3, None))
    assert len(store) == 2 and (1, 10, 6) in store and (2, 20, 5) not in store


def test_many_pairs_are_looked_up_in_chunks() -> None:
    store = PairStore()
    pairs = [(c, c + 100, u) for c in range(7) for u in range(CHUNK)]
    store.put_all((p, ((p[2],), (), ())) for p in pairs)
    found = store.get_all([*pairs, (99, 99, 99)])
    assert len(found) == len(pairs) and found[(6, 106, 299)] == ((299,), (), ())


SITE = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from bench.site import build_site, enrolment_file
build_site("sqlite:///" + sys.argv[1], users=2000, courses=100)
enrolment_file(Path(sys.argv[2]), 100000, users=2000, courses=100)
"""


def test_a_killed_preview_leaves_no_temporary_file(tmp_path: Path) -> None:
    """The states' database is SQLite's own temporary file (etilqs_*), unlinked when
    made (seen open and deleted in /proc): a preview killed half way (SIGKILL) leaves
    no such file, and one that ends leaves nothing in the temporary directory."""
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "area").mkdir()
    db, feed = tmp_path / "site.db", tmp_path / "area" / "enrols.csv"
    subprocess.run(
        [sys.executable, "-c", SITE.format(root=str(root)), str(db), str(feed)], check=True
    )
    (tmp_path / "playbook.yml").write_text(
        f'name: spill\narea: area\ndatabase: "sqlite:///{db}"\nsync:\n'
        "  - command: enrolments\n    file: enrols.csv\n    settle_seconds: 0\n"
    )
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "SQLITE_TMPDIR": str(temp)}
    command = [sys.executable, "-m", "runner", "run", "playbook.yml", "--check"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode in (0, 2) and "RECAP" in done.stdout, done.stdout + done.stderr
    assert list(temp.iterdir()) == []
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
    opened: list[str] = []
    deadline = time.monotonic() + 60
    while not opened and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)  # the states' file, open and already unlinked
        opened = [link for link in _links(proc.pid) if link.startswith(f"{temp}/etilqs_")]
    assert opened and all(link.endswith(" (deleted)") for link in opened), opened
    assert proc.poll() is None, "the preview ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # (the preview's reports and journal, in a postsync-preview-* directory removed at
    # its end, stay after a SIGKILL, as any temporary directory)
    assert not list(temp.glob("**/etilqs_*"))


def _links(pid: int) -> list[str]:
    found = []
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            found.append(os.readlink(fd))
        except OSError:  # closed meanwhile
            continue
    return found
