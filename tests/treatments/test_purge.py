"""purge_old_files through `postsync run`: it deletes, previews, is idempotent, and never
follows a symlink nor leaves its directories."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from runner.core.errors import StepError
from runner.engine.prepare import build_context
from runner.engine.results import RunOptions
from runner.playbook.model import load_playbook
from runner.treatments import TREATMENTS
from tests.conftest import CLI, make_file, snapshot, write_playbook


def purge_playbook(tmp_path: Path, params: str) -> Path:
    return write_playbook(
        tmp_path,
        f"name: Purge\narea: area\npost_treatments:\n"
        f"  - name: purge\n    purge_old_files: {params}\n",
    )


def deleted(out: str) -> list[str]:
    return [line.split()[1] for line in out.splitlines() if line.startswith("    delete ")]


def test_deletes_only_files_older_than_n_days(tmp_path: Path, area: Path, cli: CLI) -> None:
    old = make_file(area / "archives" / "old.csv", days=31)
    young = make_file(area / "archives" / "young.csv", days=29)
    result = cli("run", purge_playbook(tmp_path, "{paths: [archives], older_than_days: 30}"))
    assert result.code == 0
    assert deleted(result.out) == ["archives/old.csv"]
    assert not old.exists()
    assert young.exists()


def test_preview_lists_the_same_files_and_changes_nothing(
    tmp_path: Path, area: Path, cli: CLI
) -> None:
    for i in range(5):
        make_file(area / "archives" / f"f{i}.csv", days=10 + i)
    make_file(area / "archives" / "keep.csv", days=1)
    playbook = purge_playbook(tmp_path, "{paths: [archives], older_than_days: 9}")
    before = snapshot(area, own_state=False)
    preview = cli("run", playbook, "--check")
    assert snapshot(area, own_state=False) == before
    real = cli("run", playbook)
    assert deleted(preview.out) == deleted(real.out) == [f"archives/f{i}.csv" for i in range(5)]
    again = cli("run", playbook)
    assert again.code == 0
    assert deleted(again.out) == []
    assert "OK       purge  (nothing older than 9 days)" in again.out


def test_never_follows_symlinks(
    tmp_path: Path, area: Path, cli: CLI, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    target_file = make_file(outside / "target.csv", days=400)
    make_file(outside / "sub" / "deep.csv", days=400)
    archives = area / "archives"
    archives.mkdir()
    (archives / "linked.csv").symlink_to(target_file)
    os.utime(archives / "linked.csv", (0, 0), follow_symlinks=False)
    (archives / "linkdir").symlink_to(outside / "sub", target_is_directory=True)
    before = snapshot(outside)
    result = cli(
        "run", purge_playbook(tmp_path, "{paths: [archives], older_than_days: 1, recurse: true}")
    )
    assert result.code == 0
    assert deleted(result.out) == []
    assert snapshot(outside) == before
    assert (archives / "linked.csv").is_symlink()


def test_recurse(tmp_path: Path, area: Path, cli: CLI) -> None:
    make_file(area / "archives" / "top.csv", days=50)
    make_file(area / "archives" / "2025" / "deep.csv", days=50)
    flat = cli(
        "run", purge_playbook(tmp_path, "{paths: [archives], older_than_days: 1}"), "--check"
    )
    assert deleted(flat.out) == ["archives/top.csv"]
    deep = cli(
        "run", purge_playbook(tmp_path, "{paths: [archives], older_than_days: 1, recurse: true}")
    )
    assert deleted(deep.out) == ["archives/2025/deep.csv", "archives/top.csv"]
    assert (area / "archives" / "2025").is_dir()  # directories are kept


def test_patterns_and_exclude(tmp_path: Path, area: Path, cli: CLI) -> None:
    for name in ("a.csv", "b.csv", "b.txt", "keep-me.csv", "sub/c.csv"):
        make_file(area / "reports" / name, days=50)
    result = cli(
        "run",
        purge_playbook(
            tmp_path,
            "{paths: [reports], older_than_days: 1, recurse: true,"
            " patterns: ['*.csv'], exclude: ['keep-*', 'sub/*']}",
        ),
    )
    assert deleted(result.out) == ["reports/a.csv", "reports/b.csv"]


def test_hidden_files_and_own_state(tmp_path: Path, area: Path, cli: CLI) -> None:
    make_file(area / ".hidden.csv", days=50)
    make_file(area / ".cache" / "x.csv", days=50)
    make_file(area / ".postsync" / "runs" / "old.json", days=50)
    make_file(area / "visible.csv", days=50)
    plain = cli(
        "run",
        purge_playbook(tmp_path, "{paths: ['.'], older_than_days: 1, recurse: true}"),
        "--check",
    )
    assert deleted(plain.out) == ["visible.csv"]
    hidden = cli(
        "run",
        purge_playbook(tmp_path, "{paths: ['.'], older_than_days: 1, recurse: true, hidden: true}"),
    )
    assert deleted(hidden.out) == [".cache/x.csv", ".hidden.csv", "visible.csv"]
    assert (area / ".postsync" / "runs" / "old.json").exists()


def test_overlapping_paths_delete_once(tmp_path: Path, area: Path, cli: CLI) -> None:
    make_file(area / "a" / "b" / "old.csv", days=50)
    result = cli(
        "run",
        purge_playbook(tmp_path, "{paths: [a, a/b, a/b/], older_than_days: 1, recurse: true}"),
    )
    assert result.code == 0
    assert deleted(result.out) == ["a/b/old.csv"]


def test_missing_directory_is_nothing_to_do(tmp_path: Path, area: Path, cli: CLI) -> None:
    result = cli("run", purge_playbook(tmp_path, "{paths: [nowhere], older_than_days: 1}"))
    assert result.code == 0
    assert "OK       purge  (nothing older than 1 days, 1 directory absent)" in result.out


def test_fifo_and_other_special_files_are_left(tmp_path: Path, area: Path, cli: CLI) -> None:
    (area / "archives").mkdir()
    os.mkfifo(area / "archives" / "pipe")
    os.utime(area / "archives" / "pipe", (0, 0))
    result = cli("run", purge_playbook(tmp_path, "{paths: [archives], older_than_days: 1}"))
    assert deleted(result.out) == []
    assert (area / "archives" / "pipe").exists()


def _plan(tmp_path: Path, params: str):  # type: ignore[no-untyped-def]
    playbook = load_playbook(purge_playbook(tmp_path, params))
    run = build_context(playbook, RunOptions())
    step = playbook.post_treatments[0]
    treatment = TREATMENTS["purge_old_files"]
    config = treatment.configure(step.params, run.scope(step))
    return treatment, run, treatment.plan(config, run.facts, run.ledger, run.services)


def test_a_file_that_vanished_meanwhile_is_not_an_error(tmp_path: Path, area: Path) -> None:
    gone = make_file(area / "archives" / "gone.csv", days=50)
    make_file(area / "archives" / "there.csv", days=50)
    treatment, run, plan = _plan(tmp_path, "{paths: [archives], older_than_days: 1}")
    gone.unlink()
    done = list(treatment.apply(plan.actions, run.facts, run.ledger, run.services))
    assert [(d.action.target, d.note) for d in sorted(done, key=lambda d: d.action.target)] == [
        ("archives/gone.csv", "already gone"),
        ("archives/there.csv", ""),
    ]
    assert not (area / "archives" / "there.csv").exists()


def test_a_file_replaced_meanwhile_is_kept(tmp_path: Path, area: Path) -> None:
    path = make_file(area / "archives" / "swapped.csv", days=50)
    treatment, run, plan = _plan(tmp_path, "{paths: [archives], older_than_days: 1}")
    path.unlink()
    make_file(path, content="new data\n")
    with pytest.raises(StepError, match=r"1 file not deleted: archives/swapped\.csv"):
        list(treatment.apply(plan.actions, run.facts, run.ledger, run.services))
    assert path.read_text() == "new data\n"


def test_a_directory_swapped_for_a_symlink_is_not_followed(
    tmp_path: Path, area: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    make_file(area / "archives" / "sub" / "old.csv", days=50)
    outside = tmp_path_factory.mktemp("outside")
    victim = make_file(outside / "old.csv", days=50)
    treatment, run, plan = _plan(tmp_path, "{paths: [archives], older_than_days: 1, recurse: true}")
    (area / "archives" / "sub" / "old.csv").unlink()
    (area / "archives" / "sub").rmdir()
    (area / "archives" / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StepError, match="1 file not deleted"):
        list(treatment.apply(plan.actions, run.facts, run.ledger, run.services))
    assert victim.exists()


def test_stays_on_one_filesystem(tmp_path: Path, area: Path, cli: CLI) -> None:
    mount_point = area / "archives" / "mounted"
    mount_point.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip("mounting a tmpfs needs privileges this machine does not grant")
    try:
        make_file(mount_point / "other-fs.csv", days=50)
        make_file(area / "archives" / "same-fs.csv", days=50)
        result = cli(
            "run",
            purge_playbook(tmp_path, "{paths: [archives], older_than_days: 1, recurse: true}"),
        )
        assert deleted(result.out) == ["archives/same-fs.csv"]
        assert (mount_point / "other-fs.csv").exists()
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_keep_last_keeps_the_newest_files_of_each_directory(
    tmp_path: Path, area: Path, cli: CLI
) -> None:
    """A feed that stopped for longer than older_than_days: keep_last keeps its last
    files in each directory, however old, and only files the patterns match count."""
    for i in range(5):
        make_file(area / "archives" / f"enrols-{i}.csv", days=100 + i)
    make_file(area / "archives" / "other.txt", days=200)
    for i in range(3):
        make_file(area / "archives" / "2025" / f"users-{i}.csv", days=300 + i)
    params = (
        "{paths: [archives], older_than_days: 90, keep_last: 2, patterns: ['*.csv'], recurse: true}"
    )
    playbook = purge_playbook(tmp_path, params)
    preview = cli("run", playbook, "--check")
    result = cli("run", playbook)
    assert result.code == 0, result.out
    assert (
        deleted(preview.out)
        == deleted(result.out)
        == [
            "archives/2025/users-2.csv",
            "archives/enrols-2.csv",
            "archives/enrols-3.csv",
            "archives/enrols-4.csv",
        ]
    )
    assert "the 4 newest files kept (keep_last)" in result.out
    assert sorted(p.name for p in (area / "archives").rglob("*") if p.is_file()) == [
        "enrols-0.csv",
        "enrols-1.csv",
        "other.txt",
        "users-0.csv",
        "users-1.csv",
    ]
    bad = cli(
        "run", purge_playbook(tmp_path, "{paths: [archives], older_than_days: 9, keep_last: -1}")
    )
    assert bad.code == 4 and "keep_last" in bad.err
