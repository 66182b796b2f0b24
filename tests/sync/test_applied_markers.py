"""postsync's markers of applied control files (`postsync_applied`), through the CLI:
made on the first real run, empty once a run ends, a database user who may not create
the table told what to run, areas sharing a database kept apart."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import postsync_process
from tests.sync.conftest import ENROLMENTS_STEP, Site, another_site

ENROLS = "cmd;cid;uid;rolename\nadd;MATH101;U0001;student\ndel;MATH101;U0002;student\n"


def markers(site: Site) -> list[tuple[object, ...]]:
    return site.query("SELECT path, runid FROM postsync_applied")


def test_the_first_run_makes_the_table_and_a_run_that_ends_leaves_no_marker(
    site: Site,
) -> None:
    site.write("enrols.csv", ENROLS)
    preview = site.run("--check", steps=ENROLMENTS_STEP)
    assert preview.code == 0, preview.out + preview.err
    engine = create_engine(site.url)
    try:
        with engine.connect() as conn:
            from sqlalchemy import inspect

            assert not inspect(conn).has_table("postsync_applied")  # a preview makes none
    finally:
        engine.dispose()
    result = site.run(steps=ENROLMENTS_STEP)
    assert result.code == 0, result.out + result.err
    assert markers(site) == []
    # the file stays in the area (no delete_control_files): the next run applies it again
    again = site.run(steps=ENROLMENTS_STEP)
    assert "sync enrols.csv  (2 lines: 0 changed, 2 unchanged, 0 failed)" in again.out


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_user_who_may_not_create_the_tables_is_told_what_to_run(site: Site) -> None:
    """PostgreSQL 15 and later: only the owner creates tables in `public`. Both of
    postsync's tables are named at once, with their indexes."""
    owner = create_engine(site.url)
    try:
        with owner.begin() as conn:
            conn.execute(text("DROP ROLE IF EXISTS postsync_writer"))
            conn.execute(text("CREATE ROLE postsync_writer LOGIN"))
            conn.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
            conn.execute(
                text(
                    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO"
                    " postsync_writer"
                )
            )
            conn.execute(text("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO postsync_writer"))
        writer = Site(site.root, site.url.replace("://postgres@", "://postsync_writer@", 1),
                      site.cli, site.tables)  # fmt: skip
        assert writer.url != site.url
        writer.write("enrols.csv", ENROLS)
        refused = writer.run(steps=ENROLMENTS_STEP)
        assert refused.code == 3, refused.out + refused.err
        assert "cannot create postsync's tables postsync_applied and postsync_groups" in refused.out
        assert site.enrolled("MATH101", "U0001") == []  # nothing applied
        # the owner runs the statements, and grants the tables
        ddl = refused.out.split("Create them once as the database's owner: ", 1)[1]
        statements = [s.strip() for s in ddl[: ddl.rindex(";")].split(";")]
        assert [s.split(" (")[0] for s in statements] == [
            "CREATE TABLE postsync_applied",
            "CREATE INDEX postsync_applied_runid ON postsync_applied",
            "CREATE TABLE postsync_groups",
            "CREATE INDEX postsync_groups_item ON postsync_groups",
        ]
        with owner.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
            conn.execute(text("GRANT SELECT, INSERT, UPDATE, DELETE ON postsync_applied,"
                              " postsync_groups TO postsync_writer"))  # fmt: skip
            conn.execute(text("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO postsync_writer"))
        done = writer.run(steps=ENROLMENTS_STEP)
        assert done.code == 0, done.out + done.err
        assert site.enrolled("MATH101", "U0001") != []
    finally:
        with owner.begin() as conn:
            conn.execute(text("DROP OWNED BY postsync_writer"))
            conn.execute(text("DROP ROLE IF EXISTS postsync_writer"))
        owner.dispose()


def test_two_areas_on_one_database_keep_their_markers_apart(
    site: Site, request: pytest.FixtureRequest
) -> None:
    """A killed run's marker in one area is not taken for a file of the same name and
    bytes in another area sharing the database: that one is applied."""
    site.write("enrols.csv", ENROLS)
    playbook = site.playbook(ENROLMENTS_STEP)
    killed = postsync_process("run", playbook, env={"POSTSYNC_FAULTS": "kill=sync.committed"})
    assert killed.returncode == -9
    assert len(markers(site)) == 1
    other = another_site(site, request, "other")
    other = Site(other.root, site.url, site.cli, site.tables)  # the first one's database
    other.write("enrols.csv", ENROLS)
    result = other.run(steps=ENROLMENTS_STEP)
    assert "sync enrols.csv  (2 lines: 0 changed, 2 unchanged, 0 failed)" in result.out
    assert "applied by run" not in result.out
    assert len(markers(site)) == 1  # the first area's, still pending
    rerun = site.run(steps=ENROLMENTS_STEP)
    assert "applied by run" in rerun.out, rerun.out
    assert markers(site) == []
