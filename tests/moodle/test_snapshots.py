"""A roster as a snapshot on a real site: the same roster through postsync's
`mode: snapshot` (enrol: database) and through Moodle's own enrol_database sync
(an external table in the site's PostgreSQL database) on a twin, then the roster with a
student missing: each `missing:` action enrol_database also has (its unenrolaction:
unenrol, keep, suspend, suspend and remove roles) leaves the same enrolments, with the
same status and roles."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import postsync_process
from tests.moodle.lab import Site

#: postsync's missing action -> enrol_database's unenrolaction
ACTIONS = {"unenrol": 0, "keep": 1, "suspend": 2, "suspend_and_remove_roles": 3}
FULL = [("C101", "S001", "student"), ("C101", "S002", "student"), ("C101", "S003", "teacher")]


def through_postsync(
    site: Site, tmp_path: Path, roster: list[tuple[str, str, str]], missing: str
) -> None:
    area = tmp_path / "area"
    area.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"add;{c};{u};{r}\n" for c, u, r in roster)
    (area / "roster.csv").write_text("cmd;cid;uid;rolename\n" + lines)
    book = tmp_path / "playbook.yml"
    book.write_text(
        f'name: Lab\narea: area\ndatabase: "{site.url}"\nsync:\n'
        "  - command: enrolments\n    file: roster.csv\n    mode: snapshot\n"
        f"    enrol: database\n    missing: {missing}\n    first_snapshot: apply\n"
    )
    done = postsync_process("run", book)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("missing", list(ACTIONS))
def test_a_roster_snapshot_leaves_what_enrol_database_leaves(
    site: Site, lab_twin: Site, tmp_path: Path, missing: str
) -> None:
    """The roster (S001, S002 students and S003 teacher of C101), then without S002:
    postsync's snapshot with `missing: {missing}` and enrol_database with the matching
    unenrolaction leave the same enrolments of the database plugin (user, status, roles
    with their component)."""
    for each in (site, lab_twin):
        assert each.php("enrol_database.php", "setup", "MATH101") == {"ok": True}
    rows = ",".join(":".join(r) for r in FULL)
    theirs = lab_twin.php("enrol_database.php", "sync", str(ACTIONS[missing]), rows)
    through_postsync(site, tmp_path / "1", FULL, missing)
    ours = site.php("enrol_database.php", "list")
    assert ours["enrolments"] == theirs["enrolments"], (ours, theirs)
    assert [r[1] for r in ours["enrolments"]] == ["S001", "S002", "S003"]
    roster = [r for r in FULL if r[1] != "S002"]
    theirs = lab_twin.php(
        "enrol_database.php", "sync", str(ACTIONS[missing]), ",".join(":".join(r) for r in roster)
    )
    through_postsync(site, tmp_path / "2", roster, missing)
    ours = site.php("enrol_database.php", "list")
    assert ours["enrolments"] == theirs["enrolments"], (ours, theirs)
