"""Path confinement helpers: the per-step cache of resolved directories changes nothing."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from runner.storage.paths import NotRegular, is_within, open_regular, resolve_under
from runner.treatments.files import file_chunks


def test_resolving_with_the_directory_cache_gives_the_same_paths(tmp_path: Path) -> None:
    area, outside = tmp_path / "area", tmp_path / "outside"
    (area / "archives" / "deep").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, area / "to_outside")  # a directory symlink
    os.symlink(outside / "f.csv", area / "archives" / "leaf.csv")  # a file symlink out
    os.symlink("deep", area / "archives" / "inner")  # relative, stays inside
    raws = [
        "archives/a.csv",
        "archives/b.csv",
        "archives/leaf.csv",
        "archives/inner/x.csv",
        "archives/deep/../leaf.csv",
        "archives/..",
        "archives/.",
        "to_outside/a.csv",
        "to_outside/../area/archives/c.csv",
        "new/dir/file.csv",
        str(outside / "abs.csv"),
        "archives/",
        "archives//d.csv",
        "./archives/./e.csv",
        "archives/deep/",
    ]
    dirs: dict[str, str] = {}
    for _ in range(2):  # the second time from the cache
        for raw in raws:
            assert resolve_under(raw, area, dirs) == resolve_under(raw, area), raw
    assert resolve_under("archives/leaf.csv", area, dirs) == outside / "f.csv"
    assert resolve_under("to_outside/a.csv", area, dirs) == outside / "a.csv"


def test_is_within_compares_whole_parts() -> None:
    assert is_within(Path("/a/b"), [Path("/a/b")])
    assert is_within(Path("/a/b/c"), [Path("/x"), Path("/a/b")])
    assert not is_within(Path("/a/bc"), [Path("/a/b")])
    assert not is_within(Path("/a"), [Path("/a/b")])
    assert is_within(Path("/anything"), [Path("/")])


def test_a_file_postsync_reads_is_a_regular_one_opened_without_waiting(tmp_path: Path) -> None:
    """open_regular, which every reader of a file postsync wrote or was given shares
    (control files, kept snapshots, journal parts, archived copies): a regular file is
    read; a symlink is not followed (ELOOP); a FIFO (no writer: opening it must not
    wait), a directory are refused as what they are."""
    (tmp_path / "f.csv").write_bytes(b"a;b\n")
    fd, st = open_regular(tmp_path / "f.csv")
    assert os.read(fd, 10) == b"a;b\n" and st.st_size == 4 and os.get_blocking(fd)
    os.close(fd)
    os.symlink(tmp_path / "f.csv", tmp_path / "link.csv")
    os.mkfifo(tmp_path / "fifo.csv")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(OSError) as caught:
        open_regular(tmp_path / "link.csv")
    assert caught.value.errno == errno.ELOOP
    for name, what in (("fifo.csv", "a FIFO"), ("dir.csv", "a directory")):
        with pytest.raises(NotRegular) as refused:
            open_regular(tmp_path / name)
        assert refused.value.what == what
        with pytest.raises(OSError):  # an archive's copy checked against a FIFO: refused
            b"".join(file_chunks(tmp_path / name))
    assert b"".join(file_chunks(tmp_path / "f.csv")) == b"a;b\n"
