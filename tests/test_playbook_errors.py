"""Hostile playbooks (tests/cases/bad_playbooks/NAME.yml): exact located errors, exit 4,
no traceback, nothing changed: neither the files (a control file, archives, a symlink
leading outside the area) nor the database. NAME.expected holds the expected stderr
({dir} = the case's directory)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import CLI, make_file, snapshot

CASES = Path(__file__).parent / "cases" / "bad_playbooks"
ENROLS = "cmd;cid;uid;rolename\nadd;MATH101;U0001;student\n"
NAMES = sorted(p.stem for p in CASES.glob("*.yml"))


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from runner.cli.main import main

    path = tmp_path_factory.mktemp("seed") / "moodle.db"
    assert main(["db", "init", f"sqlite:///{path}", "--demo"]) == 0
    return path


def prepare_case_dir(directory: Path, seeded_db: Path) -> None:
    """An area with an old archive and a control file, a symlink from the area to a
    directory outside it, and a demo database."""
    make_file(directory / "area" / "archives" / "old.csv", days=400)
    make_file(directory / "area" / "enrols.csv", days=400, content=ENROLS)
    make_file(directory / "outside" / "secret.csv", days=400, content=ENROLS)
    (directory / "area" / "linkout").symlink_to(directory / "outside")
    shutil.copy(seeded_db, directory / "moodle.db")


def copy_case(name: str, directory: Path) -> None:
    shutil.copy(CASES / f"{name}.yml", directory)
    if name == "huge_document":  # over the 2 MiB limit, generated rather than stored
        with open(directory / f"{name}.yml", "a") as out:
            out.write("  filler: " + "x" * (2 * 1024 * 1024) + "\n")


@pytest.fixture
def case_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seeded_db: Path) -> Path:
    prepare_case_dir(tmp_path, seeded_db)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name", NAMES)
def test_run_reports_located_errors_and_changes_nothing(
    name: str, case_dir: Path, cli: CLI
) -> None:
    copy_case(name, case_dir)
    expected = (CASES / f"{name}.expected").read_text().replace("{dir}", str(case_dir))
    before = snapshot(case_dir)
    for args in ([], ["--check"]):
        result = cli("run", f"{name}.yml", *args)
        assert result.code == 4
        assert result.err == expected
        assert "Traceback" not in result.out + result.err
    assert snapshot(case_dir) == before


@pytest.mark.parametrize("name", NAMES)
def test_validate_reports_the_same_errors(name: str, case_dir: Path, cli: CLI) -> None:
    copy_case(name, case_dir)
    expected = (CASES / f"{name}.expected").read_text().replace("{dir}", str(case_dir))
    result = cli("validate", f"{name}.yml")
    assert result.code == 4
    problems = [line for line in expected.splitlines() if not line.startswith("postsync:")]
    assert result.err.splitlines()[:-1] == problems


def test_there_are_at_least_sixty_cases() -> None:
    assert len(NAMES) >= 60
    assert all((CASES / f"{n}.expected").is_file() for n in NAMES)


def test_errors_of_several_files_are_all_reported(case_dir: Path, cli: CLI) -> None:
    shutil.copy(CASES / "negative_days.yml", case_dir)
    shutil.copy(CASES / "duplicate_key.yml", case_dir)
    (case_dir / "good.yml").write_text("name: Good\narea: area\n")
    result = cli("validate", "negative_days.yml", "good.yml", "duplicate_key.yml")
    assert result.code == 4
    assert "negative_days.yml:6:24:" in result.err
    assert "duplicate_key.yml:3:1:" in result.err
    assert result.out == "ok  good.yml  (0 sync steps, 0 post-treatments)\n"
    assert result.err.endswith("postsync: 2 of 3 playbooks invalid\n")


def test_symlinked_directory_leading_outside_is_refused(
    case_dir: Path, cli: CLI, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    victim = make_file(outside / "precious.csv", days=400)
    (case_dir / "area" / "escape").symlink_to(outside)
    (case_dir / "p.yml").write_text(
        "name: Escape\narea: area\npost_treatments:\n"
        "  - purge_old_files: {paths: [escape], older_than_days: 1}\n"
    )
    result = cli("run", "p.yml")
    assert result.code == 4
    assert result.err.startswith(
        f"p.yml:4:31: post_treatments[0].purge_old_files.paths[0]: escape resolves to"
        f" {outside}, which is outside the area"
    )
    assert victim.exists()


def test_roots_allow_a_directory_outside_the_area(
    case_dir: Path, cli: CLI, tmp_path_factory: pytest.TempPathFactory
) -> None:
    backups = tmp_path_factory.mktemp("backups")
    old = make_file(backups / "old.csv", days=400)
    (case_dir / "p.yml").write_text(
        f"name: Roots\narea: area\nroots: [{backups}]\npost_treatments:\n"
        f"  - purge_old_files: {{paths: [{backups}], older_than_days: 1}}\n"
    )
    result = cli("run", "p.yml")
    assert result.code == 0, result.err
    assert f"delete {old}" in result.out
    assert not old.exists()


def test_huge_alias_expansion_is_refused(case_dir: Path, cli: CLI) -> None:
    lines = ["name: Laughs", "area: area", 'a0: &a0 ["lol"]']
    for i in range(1, 20):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    (case_dir / "p.yml").write_text("\n".join(lines) + "\n")
    result = cli("run", "p.yml")
    assert result.code == 4
    assert result.err.startswith("p.yml:1:1: document too large or too deeply nested")


def test_deep_nesting_is_refused(case_dir: Path, cli: CLI) -> None:
    (case_dir / "p.yml").write_text(
        "name: Deep\narea: area\nvars:\n  x: " + "[" * 5000 + "]" * 5000 + "\n"
    )
    result = cli("validate", "p.yml")
    assert result.code == 4
    assert "p.yml:" in result.err
    assert "Traceback" not in result.err


def test_unreadable_playbook(case_dir: Path, cli: CLI) -> None:
    result = cli("run", "missing.yml")
    assert result.code == 4
    assert result.err.startswith("missing.yml:1:1: cannot read: No such file or directory")
