"""The `postsync-validate` pre-commit hook, run by pre-commit itself on a scratch
repository of playbooks, as a user's `.pre-commit-config.yaml` would (a `repo:` and a
`rev:`; the hook repository here is a git commit of this working tree)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PRE_COMMIT = shutil.which("pre-commit")

pytestmark = pytest.mark.skipif(
    not (PRE_COMMIT and shutil.which("git")) and not os.environ.get("CI"),
    reason="pre-commit or git not installed (pip install pre-commit)",
)

GOOD = "name: ok\narea: area\npost_treatments:\n  - save_report: {}\n"
BAD = "name: bad\narea: area\npost_treatments:\n  - save_report: {dest: 3}\n"


def test_hook_is_declared() -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "postsync-validate"
    assert hook["entry"] == "postsync validate" and hook["language"] == "python"


ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.org",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.org",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **ENV},
    ).stdout.strip()


def hook_repository(where: Path) -> tuple[Path, str]:
    """This working tree's package and hook manifest, committed: (path, commit)."""
    where.mkdir()
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy(ROOT / name, where / name)
    shutil.copytree(ROOT / "runner", where / "runner", ignore=shutil.ignore_patterns("__pycache__"))
    git(where, "init", "-q")
    git(where, "add", ".")
    git(where, "commit", "-q", "-m", "postsync")
    return where, git(where, "rev-parse", "HEAD")


def run_hook(repo: Path, home: Path, *files: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PRE_COMMIT), "run", "postsync-validate", "--files", *files],
        cwd=repo,
        # its environments are kept in PRE_COMMIT_HOME: built once for both runs
        env={**os.environ, **ENV, "PRE_COMMIT_HOME": str(home)},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_hook_validates_playbooks_in_a_scratch_repository(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    hooks, rev = hook_repository(tmp_path_factory.mktemp("hooks") / "postsync")
    repo = tmp_path_factory.mktemp("playbooks-repo")
    home = tmp_path_factory.mktemp("pre-commit-home")
    git(repo, "init", "-q")
    (repo / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {hooks}\n    rev: {rev}\n    hooks:\n      - id: postsync-validate\n"
    )
    (repo / "playbooks").mkdir()
    (repo / "playbooks" / "good.yml").write_text(GOOD)
    (repo / "playbooks" / "bad.yml").write_text(BAD)
    (repo / "notes.yml").write_text(BAD)  # not under playbooks/: not a playbook
    git(repo, "add", ".")

    ok = run_hook(repo, home, "playbooks/good.yml", "notes.yml")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "postsync validate" in ok.stdout and "Passed" in ok.stdout

    bad = run_hook(repo, home, "playbooks/good.yml", "playbooks/bad.yml")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Failed" in bad.stdout
    assert "playbooks/bad.yml:4:" in bad.stdout  # FILE:LINE:COL of the problem
