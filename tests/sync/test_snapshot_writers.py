"""A snapshot applied while other writers change the same course, on PostgreSQL and
MariaDB: Moodle unenrols a user the snapshot misses, and another area's postsync enrols
one it does not list, both while the snapshot's transaction is half way. The snapshot's
run ends (or fails whole, nothing applied, and says why); a run of the same snapshot
after it leaves exactly what the snapshot lists (diffing: once a full reconcile sees
the other writer's row), and one more changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import paused, postsync_process
from tests.sync.conftest import Site
from tests.sync.test_snapshot_enrolments import users

HEADER = "cmd;cid;uid;rolename\n"
STEP = (
    "  - command: enrolments\n    file: roster.csv\n    mode: snapshot\n"
    "    missing: unenrol\n    first_snapshot: apply\n{extra}"
)


def enrol(site: Site, area: str, *people: str) -> None:
    """Another area of the same site enrols `people` in MATH101 (commands)."""
    root = site.root / area
    (root / "area").mkdir(parents=True, exist_ok=True)
    (root / "area" / "enrols.csv").write_text(
        HEADER + "".join(f"add;MATH101;{u};student\n" for u in people)
    )
    playbook = root / "playbook.yml"
    playbook.write_text(
        f'name: other\narea: area\ndatabase: "{site.url}"\nsync:\n'
        "  - command: enrolments\n    file: enrols.csv\n"
    )
    result = postsync_process("run", playbook)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)
@pytest.mark.parametrize("diff", [False, True])
def test_a_snapshot_while_moodle_and_another_area_write_the_same_course(
    site: Site, diff: bool
) -> None:
    enrol(site, "setup", "U0001", "U0002", "U0003", "U0004")
    steps = STEP.format(extra="    diff: true\n" if diff else "")
    roster = HEADER + "".join(f"add;MATH101;{u};student\n" for u in ("U0001", "U0002", "U0006"))
    if diff:  # a first snapshot kept, listing U0003 and U0004 too
        site.write("roster.csv", HEADER + "".join(
            f"add;MATH101;U000{i};student\n" for i in range(1, 5)))  # fmt: skip
        first = site.run(steps=steps)
        assert first.code == 0, first.out + first.err
    site.write("roster.csv", roster)
    site.playbook(steps)
    run, go = paused("run", site.root / "playbook.yml", point="sync.batch", where=site.root)
    try:
        # Moodle unenrols U0003 (missing from the snapshot) meanwhile...
        site.execute(
            "DELETE FROM mdl_user_enrolments WHERE userid ="
            " (SELECT id FROM mdl_user WHERE idnumber = 'U0003')"
        )
        # ...and another area enrols U0005, whom the snapshot does not list
        enrol(site, "other", "U0005")
    finally:
        Path(go).touch()
        out, err = run.communicate(timeout=120)
    assert run.returncode in (0, 3), out + err
    if run.returncode == 3:  # failed whole, with the database's reason
        assert "nothing of roster.csv was applied" in out + err, out + err
    again = site.run("-v")
    assert again.code == 0, again.out + again.err
    listed = ["U0001", "U0002", "U0006"]
    if diff:  # another writer's row: seen at the next full reconcile (README)
        assert users(site, "MATH101") == sorted({*listed, "U0005"})
        full = site.run("-v", "--full-reconcile")
        assert "missing: unenrol U0005 in MATH101" in full.out, full.out
    assert users(site, "MATH101") == listed
    assert "missing:" not in site.run("-v", "--full-reconcile").out
    assert "missing:" not in site.run("-v").out
    assert users(site, "MATH101") == listed
