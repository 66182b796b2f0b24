"""clean_empty_groups' part of the change journal, through `postsync run`, on SQLite,
PostgreSQL and MariaDB: the rows as they were, the preview's lines equal to the run's,
a secret never written, a transaction that fails leaves no part."""

from __future__ import annotations

import errno
import json
import os
import signal
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from runner.core import faults
from runner.record.journal import journal_schema, parts
from tests.sync.conftest import ENROLMENTS_STEP, Site
from tests.sync.test_enrolments import latest_record
from tests.treatments.test_groups import HEADER, add_grouping, cleanup_playbook

PART = "clean_empty_groups.journal"


def shown(out: str) -> list[str]:
    """The journal lines --diff prints under the step's actions."""
    return [line.strip() for line in out.splitlines() if line.startswith("        journal: ")]


def run_dir(site: Site) -> Path:
    return site.area / ".postsync" / "runs" / latest_record(site)["run_id"]


def setup(site: Site) -> None:
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;gadd;G1;\n")
    add_grouping(site, "MATH101", "Tutorials", ["G2"], default=True)
    add_grouping(site, "MATH101", "Lectures", ["G1"])
    site.execute(
        "UPDATE mdl_groups SET enrolmentkey = 'sesame-42', description = 'Tuesday labs',"
        " timecreated = 1700000000 WHERE idnumber = 'MATH101-G2'"
    )
    cleanup_playbook(site, "{groupings: true, groups: all_empty}")


def test_deletions_are_journaled_as_the_rows_were(site: Site) -> None:
    setup(site)
    [(g2, course)] = site.query("SELECT id, courseid FROM mdl_groups WHERE idnumber = 'MATH101-G2'")
    [(tutorials,)] = site.query("SELECT id FROM mdl_groupings WHERE name = 'Tutorials'")
    preview = site.run("--check", "--diff")
    assert preview.code == 0, preview.out
    real = site.run("--diff")
    assert real.code == 0, real.out
    assert shown(preview.out) == shown(real.out)
    assert len(shown(real.out)) == 2

    found = parts(run_dir(site))
    assert found[-1].name.endswith("_" + PART)  # after the sync's parts
    number = int(found[-1].name[:3])
    assert number == max(int(p.name[:3]) for p in run_dir(site).iterdir() if p.name[3] == "_")
    text = found[-1].read_text()
    assert "sesame-42" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [f"journal: {line}" for line in text.splitlines()] == shown(real.out)
    validator = Draft202012Validator(journal_schema())
    for line in lines:
        validator.validate(line)
    for written, line in zip(text.splitlines(), lines, strict=True):
        # compact JSON: the line's own fields first, then the row's, keys sorted
        assert written == json.dumps(line, separators=(",", ":"), ensure_ascii=False)
        keys = list(line)
        assert keys[:6] == ["seq", "kind", "file", "line", "step", "courseid"]
        assert keys[6:] == sorted(keys[6:])
    group, grouping = lines
    assert group["kind"] == "group_deleted" and grouping["kind"] == "grouping_deleted"
    assert [line["seq"] for line in lines] == [1, 2]
    for line in lines:
        assert line["file"] is None and line["line"] is None
        assert line["step"] == "clean_empty_groups"
        assert line["courseid"] == course
    assert group["id"] == g2
    assert (group["name"], group["idnumber"]) == ("G2", "MATH101-G2")
    assert (group["description"], group["timecreated"]) == ("Tuesday labs", 1700000000)
    assert group["has_enrolmentkey"] is True and "enrolmentkey" not in group
    assert group["groupings"] == [tutorials]  # the link went with it
    assert (grouping["id"], grouping["name"], grouping["groups"]) == (tutorials, "Tutorials", [])


def test_a_run_that_deletes_nothing_writes_no_part(site: Site) -> None:
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;gadd;G1;\n")
    cleanup_playbook(site)  # the demo's groups were made in Moodle: none goes
    result = site.run()
    assert result.code == 0, result.out
    assert not [p for p in parts(run_dir(site)) if p.name.endswith(PART)]


def test_a_failed_deletion_leaves_no_part_and_the_next_run_writes_it(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(site)
    point = faults.point

    def fail(name: str) -> None:
        if name == "groups.commit":
            raise OSError(errno.EIO, "Input/output error")
        point(name)

    monkeypatch.setattr(faults, "point", fail)
    failed = site.run()
    assert failed.code == 3, failed.out
    assert site.query("SELECT COUNT(*) FROM mdl_groups WHERE idnumber = 'MATH101-G2'") == [(1,)]
    assert not [p for p in parts(run_dir(site)) if p.name.endswith(PART)]
    monkeypatch.setattr(faults, "point", point)
    again = site.run()  # the file is known as applied: only the cleanup runs again
    assert again.code == 0, again.out
    assert site.query("SELECT COUNT(*) FROM mdl_groups WHERE idnumber = 'MATH101-G2'") == [(0,)]
    [part] = [p for p in parts(run_dir(site)) if p.name.endswith(PART)]
    assert [json.loads(line)["kind"] for line in part.read_text().splitlines()] == [
        "group_deleted",
        "grouping_deleted",
    ]


def test_a_run_stopped_as_the_deletion_commits_keeps_its_part(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM just after the deletion's commit: the run stops (143) once the commit is
    noted, the deleted groups' lines kept; without that, the part would be withdrawn as
    if nothing were deleted."""
    setup(site)
    point = faults.point

    def stop(name: str) -> None:
        if name == "groups.committed":
            os.kill(os.getpid(), signal.SIGTERM)
        point(name)

    monkeypatch.setattr(faults, "point", stop)
    stopped = site.run()
    assert stopped.code == 143, stopped.out + stopped.err
    assert site.query("SELECT COUNT(*) FROM mdl_groups WHERE idnumber = 'MATH101-G2'") == [(0,)]
    [part] = [p for p in parts(run_dir(site)) if p.name.endswith(PART)]
    assert [json.loads(line)["kind"] for line in part.read_text().splitlines()] == [
        "group_deleted",
        "grouping_deleted",
    ]


def test_post_adds_its_part_after_what_the_run_dir_holds_never_through_a_link(
    site: Site, tmp_path: Path
) -> None:
    setup(site)
    playbook = (site.root / "playbook.yml").read_text()
    site.playbook(ENROLMENTS_STEP)  # the sync alone
    assert site.run().code == 0
    record = site.area / ".postsync" / "runs" / (latest_record(site)["run_id"] + ".json")
    target = tmp_path / "elsewhere.journal"
    target.write_text("not postsync's\n")
    (run_dir(site) / "007_clean_empty_groups.journal").symlink_to(target)
    (site.root / "playbook.yml").write_text(playbook)
    preview = site.cli("post", record, "--check", "--diff")
    assert preview.code == 0, preview.out
    result = site.cli("post", record, "--diff")
    assert result.code == 0, result.out
    assert shown(result.out) == shown(preview.out) and len(shown(result.out)) == 2
    assert target.read_text() == "not postsync's\n"
    assert parts(run_dir(site))[-1].name == "008_clean_empty_groups.journal"
    assert not parts(run_dir(site))[-1].is_symlink()
