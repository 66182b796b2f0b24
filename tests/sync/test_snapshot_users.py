"""users in `mode: snapshot` through `postsync run`, on SQLite, PostgreSQL and MariaDB:
a user of the scope's auth whom no line names is suspended (their sessions end), never
a user of another auth, the guest or an administrator; a renamed user is named; the
preview says what the run does; a second run changes nothing; a truncated export is
refused by max_changes."""

from __future__ import annotations

from tests.sync.conftest import Site
from tests.sync.test_enrolments import report
from tests.sync.test_snapshot_enrolments import changes, run

STEP = (
    "  - command: users\n    file: users.csv\n    user_key: username\n    mode: snapshot\n"
    "    missing: suspend\n    scope: {auth: ldap}\n    first_snapshot: apply\n"
)


def suspended(site: Site) -> dict[str, int]:
    return dict(
        site.query(
            "SELECT username, suspended FROM mdl_user WHERE username LIKE 'l%' OR username"
            " IN ('admin', 'u0001') ORDER BY 1"
        )
    )


def test_a_users_snapshot_suspends_the_users_of_its_auth_it_misses(site: Site) -> None:
    site.execute("UPDATE mdl_config SET value = 'ldap' WHERE name = 'auth'")
    site.execute(
        "INSERT INTO mdl_config (name, value) SELECT 'auth', 'ldap' WHERE NOT EXISTS"
        " (SELECT 1 FROM mdl_config WHERE name = 'auth')"
    )
    header = "username;firstname;lastname;auth\n"
    site.write("users.csv", header + "".join(f"l{i};L;{i};ldap\n" for i in range(1, 5)))
    run(site, "  - command: users\n    file: users.csv\n    user_key: username\n")
    site.execute("UPDATE mdl_user SET auth = 'ldap' WHERE username = 'admin'")
    # l4 renamed to l4b by its line (by idnumber it would be; by username: a new user)
    site.write("users.csv", header + "l1;L;1;ldap\nl2;L;2;ldap\nl5;L;5;ldap\n")
    preview = run(site, STEP, "--check", "--diff")
    out = run(site, STEP, "--diff")
    assert changes(preview) == changes(out)
    assert suspended(site) == {
        "admin": 0,
        "l1": 0,
        "l2": 0,
        "l3": 1,
        "l4": 1,
        "l5": 0,
        "u0001": 0,
    }
    assert report(site)[-2:] == [
        "missing: suspend l3: ok (missing from the snapshot)",
        "missing: suspend l4: ok (missing from the snapshot)",
    ]
    assert "missing from the snapshot" not in run(site, STEP)
    # a truncated export: 2 of the 3 active ldap users missing
    site.write("users.csv", header + "l1;L;1;ldap\n")
    dump = site.dump()
    out = run(site, STEP + "    max_changes: {suspend_user: 1}\n", code=3)
    assert "it suspends 2 users, more than max_changes.suspend_user 1" in out
    assert site.dump() == dump


def test_a_users_snapshot_needs_a_scope(site: Site) -> None:
    site.write("users.csv", "username;firstname;lastname\nl1;L;1\n")
    steps = STEP.replace("    scope: {auth: ldap}\n", "")
    result = site.run(steps=steps)
    assert result.code == 4, result.out + result.err
    assert "a users snapshot needs `scope: {auth: NAME}`" in result.err
