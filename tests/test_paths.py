"""Path confinement helpers: the per-step cache of resolved directories changes nothing."""

from __future__ import annotations

import os
from pathlib import Path

from runner.storage.paths import is_within, resolve_under


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
