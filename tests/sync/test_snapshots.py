"""`mode: snapshot` through `postsync run`, on SQLite, PostgreSQL and MariaDB: a cohorts
file that is the whole truth for the cohorts it names. What it misses is removed
(`missing: remove`) or kept, only in the cohorts it names and never in another
plugin's; each removal is a `missing:` line of the report, counted in the record and
journaled; the first snapshot of a step removes nothing unless told it may; a
truncated export is refused by max_changes; a second run changes nothing; the preview
says what the run does; a retry file is never read as a snapshot; a snapshot step
reads one file."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.sync.conftest import Site
from tests.sync.test_enrolments import latest_record, report
from tests.sync.test_journal import journal

HEADER = "cidnumber;cname;userid\n"
SETUP = (
    "cmd;cidnumber;cname;userid\n"
    + "".join(f"add;C1;One;U000{i}\n" for i in (1, 2, 3))
    + "add;C2;Two;U0004\n"
)
STEP = "  - command: cohorts\n    file: cohorts*.csv\n"
SNAPSHOT = STEP + "    mode: snapshot\n    missing: remove\n"


def members(site: Site) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for cohort, user in site.query(
        "SELECT c.idnumber, u.idnumber FROM mdl_cohort_members m JOIN mdl_cohort c"
        " ON c.id = m.cohortid JOIN mdl_user u ON u.id = m.userid ORDER BY 1, 2"
    ):
        found.setdefault(cohort, []).append(user)
    return found


def prepare(site: Site) -> None:
    site.write("cohorts.csv", SETUP)
    assert site.run(steps=STEP).code == 0
    # a cohort another plugin made, with a member
    site.execute(
        "INSERT INTO mdl_cohort (contextid, name, idnumber, description, descriptionformat,"
        " visible, component, timecreated, timemodified)"
        " VALUES (1, 'Theirs', 'CX', '', 1, 1, 'auth_other', 0, 0)"
    )
    site.execute(
        "INSERT INTO mdl_cohort_members (cohortid, userid, timeadded)"
        " SELECT c.id, u.id, 0 FROM mdl_cohort c, mdl_user u"
        " WHERE c.idnumber = 'CX' AND u.idnumber = 'U0006'"
    )


def run(site: Site, steps: str, *args: str, code: int = 0) -> str:
    result = site.run(*args, steps=steps)
    assert result.code == code, result.out + result.err
    return result.out


def test_a_snapshot_removes_what_it_misses_only_in_the_cohorts_it_names(site: Site) -> None:
    prepare(site)
    before = members(site)
    assert before == {"C1": ["U0001", "U0002", "U0003"], "C2": ["U0004"], "CX": ["U0006"]}
    body = HEADER + "C1;One;U0001\nC1;One;U0002\nC1;One;U0005\nCX;Theirs;U0007\n"
    site.write("cohorts.csv", body)
    # the first snapshot of the step would remove a member: refused, nothing applied
    dump = site.dump()
    for args in (["--check"], []):
        out = run(site, SNAPSHOT, *args, code=3)
        assert (
            "the first snapshot this step applies to the site would act on 1 row it does not"
            " list (missing: remove); nothing applied" in out
        ), out
    assert site.dump() == dump
    # told it may: the preview says what the run does
    steps = SNAPSHOT + "    first_snapshot: apply\n"
    preview = run(site, steps, "--check", "--diff", code=2)  # CX's line failed
    assert "1 missing from the snapshot acted on" in preview
    out = run(site, steps, "--diff", code=2)
    assert members(site) == {"C1": ["U0001", "U0002", "U0005"], "C2": ["U0004"], "CX": ["U0006"]}
    assert report(site) == [
        "line 2: add U0001 in cohort C1: ok (unchanged)",
        "line 3: add U0002 in cohort C1: ok (unchanged)",
        "line 4: add U0005 in cohort C1: ok",
        "line 5: add U0007 in cohort CX: failed: the cohort belongs to auth_other",
        "missing: del U0003 in cohort C1: ok (missing from the snapshot)",
    ]
    [entry] = latest_record(site)["control_files"]
    assert entry["lines"] == {
        "total": 4,
        "changed": 1,
        "unchanged": 2,
        "failed": 1,
        "partly": 0,
        "missing": 1,
    }
    changes = journal(site)
    assert [(c["kind"], c["line"]) for c in changes] == [
        ("cohort_member_added", 4),
        ("cohort_member_removed", None),
    ]
    shown = [json.loads(x) for x in out.splitlines() if x.startswith(" " * 8 + "{")]
    previewed = [json.loads(x) for x in preview.splitlines() if x.startswith(" " * 8 + "{")]
    assert _without_ids(previewed) == _without_ids(shown)
    # the same snapshot again changes nothing; a later one acts without being told
    run(site, SNAPSHOT, code=2)
    assert "missing" not in latest_record(site)["control_files"][0]["lines"]
    site.write("cohorts.csv", HEADER + "C1;One;U0001\nC1;One;U0005\n")
    run(site, SNAPSHOT)
    assert members(site)["C1"] == ["U0001", "U0005"]


def _without_ids(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in c.items() if k not in ("id", "seq")} for c in changes]


def test_missing_keep_and_the_guard(site: Site) -> None:
    prepare(site)
    site.write("cohorts.csv", HEADER + "C1;One;U0001\n")
    run(site, STEP + "    mode: snapshot\n    missing: keep\n")
    assert members(site)["C1"] == ["U0001", "U0002", "U0003"]
    # a truncated export: 2 of C1's 3 members missing, over the limit
    steps = SNAPSHOT + "    first_snapshot: apply\n    max_changes: {remove_cohort_member: '50%'}\n"
    dump = site.dump()
    for args in (["--check"], []):
        out = run(site, steps, *args, code=3)
        assert "it removes 2 of the 3 members cohort C1 had before the file (67%)" in out, out
    assert site.dump() == dump


def test_a_snapshot_holds_add_lines_only_and_reads_one_file(site: Site) -> None:
    prepare(site)
    site.write("cohorts.csv", "cmd;cidnumber;cname;userid\nadd;C1;One;U0001\ndel;C1;One;U0002\n")
    run(site, SNAPSHOT + "    first_snapshot: apply\n", code=2)
    assert report(site)[1] == (
        "line 3: del U0002 in cohort C1: failed: cmd del in a snapshot (mode: snapshot): the"
        " file lists the members; what it does not list goes"
    )
    # the failed del line names U0002 nowhere as a member: U0002 and U0003 missing
    assert members(site)["C1"] == ["U0001"]
    site.write("cohorts1.csv", HEADER + "C1;One;U0001\n")
    site.write("cohorts2.csv", HEADER + "C1;One;U0001\n")
    dump = site.dump()
    out = run(site, SNAPSHOT, code=3)
    assert "mode: snapshot reads one file, the whole truth: 3 match" in out, out
    assert site.dump() == dump


def test_a_retry_file_is_never_read_as_a_snapshot(site: Site) -> None:
    prepare(site)
    (site.area / "cohorts.csv").unlink()
    site.write("cohorts_tryback_20261206-0100.csv", HEADER + "C1;One;U0005\n")
    steps = SNAPSHOT + "    first_snapshot: apply\n    include_retry_files: true\n"
    out = run(site, steps)
    assert "snapshot" not in out
    assert members(site)["C1"] == ["U0001", "U0002", "U0003", "U0005"]


def test_undo_gives_back_what_a_snapshot_removed(site: Site) -> None:
    prepare(site)
    before = members(site)
    site.write("cohorts.csv", HEADER + "C1;One;U0001\n")
    run(site, SNAPSHOT + "    first_snapshot: apply\n")
    assert members(site)["C1"] == ["U0001"]
    runs = site.area / ".postsync" / "runs"
    record = max(runs.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    result = site.cli("undo", record)
    assert result.code == 0, result.out + result.err
    assert "cohorts.csv (missing from the snapshot)" in result.out
    (site.area / "cohorts.csv").unlink()
    [written] = (site.area / ".postsync" / "undo").glob("*/undo.yml")
    assert site.cli("run", written).code == 0
    assert members(site) == before


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_user_who_may_not_create_the_snapshots_table_is_told_what_to_run(
    site: Site,
) -> None:
    """postsync's first two tables exist (a run made them), the user may not create a
    third: a snapshot step fails saying which statement the owner runs, nothing of it
    applied; a commands step of the same site still runs."""
    prepare(site)
    owner = create_engine(site.url)
    try:
        with owner.begin() as conn:
            conn.execute(text("DROP ROLE IF EXISTS postsync_snap"))
            conn.execute(text("CREATE ROLE postsync_snap LOGIN"))
            conn.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
            conn.execute(
                text(
                    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO"
                    " postsync_snap"
                )
            )
            conn.execute(text("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO postsync_snap"))
        user = Site(site.root, site.url.replace("://postgres@", "://postsync_snap@", 1),
                    site.cli, site.tables)  # fmt: skip
        user.write("cohorts.csv", HEADER + "C1;One;U0001\n")
        dump = site.dump()
        out = run(user, SNAPSHOT + "    first_snapshot: apply\n", code=3)
        assert "cannot create postsync's table postsync_snapshots" in out, out
        assert "CREATE TABLE postsync_snapshots" in out
        assert site.dump() == dump
        user.write("cohorts.csv", "cmd;cidnumber;cname;userid\nadd;C2;Two;U0005\n")
        run(user, STEP)
        assert members(site)["C2"] == ["U0004", "U0005"]
    finally:
        with owner.begin() as conn:
            conn.execute(text("DROP OWNED BY postsync_snap"))
            conn.execute(text("DROP ROLE IF EXISTS postsync_snap"))
        owner.dispose()
