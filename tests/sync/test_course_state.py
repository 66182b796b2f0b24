"""Course pages already open when a file changes group memberships: from Moodle 4.5.1
Moodle resets their course state on every membership change, and postsync moves the
course's cache revision on for the same effect (runner/db/revisions.py), on SQLite,
PostgreSQL and MariaDB."""

from __future__ import annotations

import time

import pytest

from tests.sync.conftest import ENROLMENTS_STEP, Site
from tests.sync.test_enrolments import HEADER, sync
from tests.sync.test_group_members import members
from tests.sync.test_users import USERS_STEP

MOODLE_45_6, MOODLE_4_5, MOODLE_4_2 = "2024100706.00", "2024100700.00", "2023042400.00"


def revisions(site: Site) -> dict[str, int]:
    return {
        str(short): int(rev or 0)
        for short, rev in site.query(
            "SELECT shortname, cacherev FROM mdl_course WHERE id > 1 ORDER BY shortname"
        )
    }


def moodle(site: Site, version: str | None) -> None:
    """The site as Moodle `version` records itself (None: no version recorded)."""
    site.execute("DELETE FROM mdl_config WHERE name = 'version'")
    if version is not None:
        site.execute("INSERT INTO mdl_config (name, value) VALUES ('version', :v)", v=version)


def test_a_membership_change_moves_its_courses_revision_on(site: Site) -> None:
    """An enrolments file's gadd and gdel, a group-members file's add and del: the
    courses whose group memberships changed get a new cache revision (the time, or one
    more), the others keep theirs; a preview and an unchanged line move nothing."""
    moodle(site, MOODLE_45_6)
    before = revisions(site)
    body = "add;MATH101;U0001;student;;;;gadd;G1;\n"
    site.write("enrols.csv", HEADER + body)
    assert site.run("--check", steps=ENROLMENTS_STEP).code == 0
    assert revisions(site) == before
    start = int(time.time())
    sync(site, body)
    after = revisions(site)
    assert after["MATH101"] >= start and after["MATH101"] != before["MATH101"]
    assert {c: r for c, r in after.items() if c != "MATH101"} == {
        c: r for c, r in before.items() if c != "MATH101"
    }
    sync(site, body)  # unchanged
    assert revisions(site) == after
    sync(site, "add;MATH101;U0001;student;;;;gdel;G1;\n")
    assert revisions(site)["MATH101"] > after["MATH101"]  # the time, or one more
    members(site, "MATH101;MATH101-G1;U0001;add\n")
    again = revisions(site)["MATH101"]
    members(site, "MATH101;MATH101-G1;U0001;del\n")
    assert revisions(site)["MATH101"] > again


def test_deleting_a_user_moves_their_groups_courses_revision_on(site: Site) -> None:
    """A users file's deletion takes the user out of their groups (as Moodle's
    delete_user, through groups_remove_member): their courses get a new revision."""
    moodle(site, MOODLE_45_6)
    sync(site, "add;PHYS101;U0002;student;;;;gadd;G1;\n")
    before = revisions(site)
    (username,) = site.query("SELECT username FROM mdl_user WHERE idnumber = 'U0002'")[0]
    site.write("userimport.csv", f"username;firstname;lastname;deleted\n{username};U;Two;1\n")
    assert site.run(steps=USERS_STEP).code == 0
    after = revisions(site)
    assert after["PHYS101"] > before["PHYS101"]
    assert after["MATH101"] == before["MATH101"]


@pytest.mark.parametrize("version", [MOODLE_4_2, MOODLE_4_5, None])
def test_before_moodle_4_5_1_no_revision_moves(site: Site, version: str | None) -> None:
    """Moodle 4.2 and 4.5.0 keep open course pages through a membership change (and a
    database without Moodle's version is not known to reset them): no revision moves."""
    moodle(site, version)
    before = revisions(site)
    sync(site, "add;MATH101;U0001;student;;;;gadd;G1;\n")
    assert site.groups_of("MATH101", "U0001") == ["G1"]
    assert revisions(site) == before


def test_the_revision_moves_as_moodles_increment_revision_number(site: Site) -> None:
    """The time; one more than a revision already later (by less than an hour); the
    time again for one further in the future."""
    moodle(site, MOODLE_45_6)
    soon, far = int(time.time()) + 600, int(time.time()) + 7200
    site.execute("UPDATE mdl_course SET cacherev = :r WHERE shortname = 'MATH101'", r=soon)
    site.execute("UPDATE mdl_course SET cacherev = :r WHERE shortname = 'PHYS101'", r=far)
    start = int(time.time())
    sync(site, "add;MATH101;U0001;student;;;;gadd;G1;\nadd;PHYS101;U0001;student;;;;gadd;G1;\n")
    after = revisions(site)
    assert after["MATH101"] == soon + 1
    assert start <= after["PHYS101"] <= int(time.time())
