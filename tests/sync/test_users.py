"""The users command through `postsync run`, on SQLite, PostgreSQL and MariaDB: files
shaped like tool_sync's user samples (create, update, suspend, delete), passwords,
custom profile fields, keys and their collisions, and what a deletion does to the
user's other rows, as Moodle's delete_user."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from passlib.hash import sha512_crypt

from tests.sync.conftest import Site
from tests.sync.test_enrolments import report
from tests.sync.test_journal import journal


def newest(site: Site) -> Path:
    """The newest run's record."""
    runs = site.area / ".postsync" / "runs"
    return max(runs.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)


USERS_STEP = "  - command: users\n    file: userimport*.csv\n"

# shaped like tool_sync's user_create_sample.csv (a comment line before the header)
CREATE = """# unit test only accepts en user lang
username;firstname;lastname;email;country;lang
john.doe;John;Doe;johndoe@foo.com;GB;en
amelie.dupont;Amélie;Dupont;adupont@foo.com;FR;en
jack.duf;Jack;Duff;jack.duff@foo.com;US;en
ggrass;Günter;Grass;ggrass@foo.com;DE;en
todelete1;To;Delete1;todelete1@foo.com;FR;en
todelete2;To;Delete2;todelete2@foo.com;FR;en
tosuspend1;To;Suspend1;tosuspend1@foo.com;FR;en
tosuspend2;To;Suspend2;tosuspend2@foo.com;FR;en
"""
# shaped like user_update_sample.csv: idnumbers for existing users, and new users
UPDATE = """username;idnumber;firstname;lastname;email;country;lang
john.doe;U9001;John;Doe;johndoe@foobar.com;GB;en
amelie.dupont;U9002;Amélie;Dupont;adupont@foobar.com;FR;en
ugr1;UGR1;User;Group1;ugr1@foo.com;GB;en
ugr2;UGR2;User;Group2;ugr1@foo.com;GB;en"""
SUSPEND = (
    "username;firstname;lastname;suspended\ntosuspend1;To;Suspend1;1\ntosuspend2;To;Suspend2;1"
)
DELETE = "username;firstname;lastname;deleted\ntodelete1;To;Delete1;1\ntodelete2;To;Delete2;1"


def users(site: Site, body: str, *args: str, options: str = "") -> list[str]:
    site.write("userimport.csv", body)
    result = site.run(*args, steps=USERS_STEP + options)
    assert result.code in (0, 2), result.err + result.out
    return report(site)


def user(site: Site, username: str, *columns: str) -> tuple[object, ...]:
    rows = site.query(f"SELECT {', '.join(columns)} FROM mdl_user WHERE username = :u", u=username)
    assert len(rows) == 1, (username, rows)
    return rows[0]


def test_tool_sync_user_samples_create_update_suspend_delete(site: Site) -> None:
    key = "    user_key: username\n"
    lines = users(site, CREATE, options=key)
    assert lines[0] == "line 3: user john.doe: ok (created)"
    assert len(lines) == 8 and all(line.endswith("ok (created)") for line in lines)
    row = user(
        site,
        "amelie.dupont",
        "firstname",
        "email",
        "country",
        "lang",
        "auth",
        "confirmed",
        "mnethostid",
        "timezone",
        "calendartype",
        "maildisplay",
        "password",
        "deleted",
        "suspended",
    )
    assert row == (
        "Amélie", "adupont@foo.com", "FR", "en", "manual", 1, 1, "99", "gregorian", 2, "", 0, 0
    )  # fmt: skip
    (uid,) = user(site, "john.doe", "id")
    # the user context, as Moodle's context_user::instance makes it
    (system,) = site.query("SELECT id FROM mdl_context WHERE contextlevel = 10")[0]
    (ctx, path, depth) = site.query(
        "SELECT id, path, depth FROM mdl_context WHERE contextlevel = 30 AND instanceid = :u",
        u=uid,
    )[0]
    assert (path, depth) == (f"/{system}/{ctx}", 2)
    # again: nothing to do
    lines = users(site, CREATE, options=key)
    assert all(line.endswith("ok (unchanged)") for line in lines), lines

    # the update sample, by idnumber (the default key): the users tool_sync's create
    # sample made have no idnumber yet; the line gives them one (their e-mail is kept)
    lines = users(site, UPDATE)
    assert lines[0] == (
        "line 2: user john.doe: ok (set idnumber; kept e-mail johndoe@foo.com"
        " (update_emails is off))"
    )
    assert lines[2:] == ["line 4: user ugr1: ok (created)", "line 5: user ugr2: ok (created)"]
    assert user(site, "john.doe", "idnumber", "email") == ("U9001", "johndoe@foo.com")
    assert all(line.endswith("(update_emails is off))") for line in users(site, UPDATE)[:2])
    lines = users(site, UPDATE, options="    update_emails: true\n")
    assert lines[0] == "line 2: user john.doe: ok (set email)"
    assert user(site, "john.doe", "email") == ("johndoe@foobar.com",)

    # suspend: the flag, and the user's sessions end
    (suspended,) = user(site, "tosuspend1", "id")
    site.execute(
        "INSERT INTO mdl_sessions (state, sid, userid, timecreated, timemodified)"
        " VALUES (0, 'abc', :u, 1, 1)",
        u=suspended,
    )
    lines = users(site, SUSPEND, options=key)
    assert lines == [
        "line 2: user tosuspend1: ok (set suspended)",
        "line 3: user tosuspend2: ok (set suspended)",
    ]
    assert user(site, "tosuspend1", "suspended") == (1,)
    assert site.query("SELECT * FROM mdl_sessions") == []
    assert all(line.endswith("(unchanged)") for line in users(site, SUSPEND, options=key))

    # delete: as Moodle's delete_user
    (gone,) = user(site, "todelete1", "id")
    lines = users(site, DELETE, options=key)
    assert lines == [
        "line 2: user todelete1: ok (deleted)",
        "line 3: user todelete2: ok (deleted)",
    ]
    name, email, idnumber, deleted = site.query(
        "SELECT username, email, idnumber, deleted FROM mdl_user WHERE id = :u", u=gone
    )[0]
    assert deleted == 1 and idnumber == ""
    assert name.startswith("todelete1@foo.com.") and name.rsplit(".", 1)[1].isdigit()
    assert email == hashlib.md5(b"todelete1").hexdigest()
    lines = users(site, DELETE, options=key)
    assert lines[0] == "line 2: user todelete1: ok (unchanged; no user has username todelete1)"


def test_a_user_created_by_the_run_is_enrolled_by_the_same_run_and_previewed(
    site: Site,
) -> None:
    site.write("userimport.csv", "username;idnumber;firstname;lastname\nnew1;N0001;New;One\n")
    site.write("enrols.csv", "cmd;cid;uid;rolename\nadd;MATH101;N0001;student\n")
    steps = USERS_STEP + "  - command: enrolments\n    file: enrols*.csv\n"
    before = site.dump()
    preview = site.run("--check", steps=steps)
    assert preview.code == 0, preview.out + preview.err
    assert site.dump() == before
    assert "enrols.csv  (1 line: 1 changed" in preview.out
    result = site.run(steps=steps)
    assert result.code == 0, result.out + result.err
    assert "enrols.csv  (1 line: 1 changed" in result.out
    assert site.enrolled("MATH101", "N0001") == [("student", 0)]
    again = site.run("--check", steps=steps)
    assert "userimport.csv  (1 line: 0 changed, 1 unchanged" in again.out
    assert "enrols.csv  (1 line: 0 changed, 1 unchanged" in again.out


def test_a_deletion_removes_the_users_rows_as_delete_user(site: Site) -> None:
    (uid,) = user(site, "u0001", "id")
    site.write(
        "enrols.csv", "cmd;cid;uid;rolename;gcmd;g1\nadd;MATH101;U0001;student;gaddcreate;G1\n"
    )
    assert site.run(steps="  - command: enrolments\n    file: enrols*.csv\n").code == 0
    site.execute(
        "INSERT INTO mdl_cohort (contextid, name, idnumber, descriptionformat, component,"
        " timecreated, timemodified) VALUES (1, 'C', 'C1', 0, '', 0, 0)"
    )
    site.execute(
        "INSERT INTO mdl_cohort_members (cohortid, userid, timeadded)"
        " SELECT id, :u, 0 FROM mdl_cohort",
        u=uid,
    )
    site.execute(
        "INSERT INTO mdl_user_preferences (userid, name, value) VALUES (:u, 'x', '1')", u=uid
    )
    counts = "SELECT COUNT(*) FROM {} WHERE userid = :u"
    tables = (
        "mdl_user_enrolments",
        "mdl_role_assignments",
        "mdl_groups_members",
        "mdl_cohort_members",
        "mdl_user_preferences",
    )
    assert all(site.query(counts.format(t), u=uid)[0][0] == 1 for t in tables)
    lines = users(site, "username;firstname;lastname;idnumber;deleted\nu0001;A;B;U0001;1\n")
    assert lines == ["line 2: user u0001: ok (deleted)"]
    assert [site.query(counts.format(t), u=uid)[0][0] for t in tables] == [0] * len(tables)
    # the guest and the administrators are never deleted
    lines = users(
        site,
        "username;firstname;lastname;deleted\nguest;G;U;1\nadmin;A;U;1\n",
        options="    user_key: username\n",
    )
    assert lines == [
        "line 2: user guest: failed: the guest user cannot be deleted",
        "line 3: user admin: failed: a site administrator cannot be deleted",
    ]
    assert site.query("SELECT deleted FROM mdl_user WHERE id IN (1, 2)") == [(0,), (0,)]


def test_passwords_are_hashed_as_moodle_and_kept_unless_asked(site: Site) -> None:
    header = "username;idnumber;firstname;lastname;auth;password\n"
    site.execute("INSERT INTO mdl_config (name, value) VALUES ('auth', 'ldap')")
    lines = users(
        site, header + "p1;P1;P;One;manual;S3cret!\np2;P2;P;Two;ldap;\np3;P3;P;Three;ldap;x\n"
    )
    assert lines[:2] == ["line 2: user p1: ok (created)", "line 3: user p2: ok (created)"]
    assert lines[2] == (
        "line 4: user p3: failed: auth ldap keeps no password in Moodle: leave the"
        " password empty for its users"
    )
    (hashed,) = user(site, "p1", "password")
    # as the demo site's Moodle (5.0) hashes: SHA-512 crypt (tests/sync/test_passwords.py)
    assert hashed.startswith("$6$rounds=10000$")
    assert sha512_crypt.verify("S3cret!", hashed)
    assert user(site, "p2", "password") == ("not cached",)
    # another password in the file: kept, unless update_passwords
    body = header + "p1;P1;P;One;manual;Other1!\n"
    assert users(site, body) == ["line 2: user p1: ok (unchanged)"]
    assert user(site, "p1", "password") == (hashed,)
    step = "    update_passwords: true\n"
    assert users(site, body, options=step) == ["line 2: user p1: ok (set password)"]
    assert users(site, body, options=step) == ["line 2: user p1: ok (unchanged)"]
    # create_passwords: Moodle's cron makes and mails the new user's password
    lines = users(site, header + "p4;P4;P;Four;manual;\n", options="    create_passwords: true\n")
    (uid,) = user(site, "p4", "id")
    assert site.query(
        "SELECT name, value FROM mdl_user_preferences WHERE userid = :u ORDER BY name", u=uid
    ) == [("auth_forcepasswordchange", "1"), ("create_password", "1")]


def test_custom_profile_fields(site: Site) -> None:
    for shortname, datatype, param1 in (
        ("Campus", "menu", "North\nSouth"),
        ("badge", "text", None),
        ("alumni", "checkbox", None),
    ):
        site.execute(
            "INSERT INTO mdl_user_info_field (shortname, name, datatype, param1)"
            " VALUES (:s, :n, :d, :p)",
            s=shortname,
            n=shortname,
            d=datatype,
            p=param1,
        )
    header = (
        "username;idnumber;firstname;lastname;profile_field_campus;profile_field_badge;"
        "profile_field_alumni\n"
    )
    lines = users(site, header + "f1;F1;F;One;North;B-1;1\nf2;F2;F;Two;East;;0\n")
    assert lines == [
        "line 2: user f1: ok (created)",
        "line 3: user f2: failed: profile_field_campus must be one of 'North', 'South'",
    ]
    (uid,) = user(site, "f1", "id")
    data = (
        "SELECT f.shortname, d.data FROM mdl_user_info_data d"
        " JOIN mdl_user_info_field f ON f.id = d.fieldid WHERE d.userid = :u"
    )
    assert sorted(site.query(data, u=uid)) == [
        ("Campus", "North"),
        ("alumni", "1"),
        ("badge", "B-1"),
    ]
    assert users(site, header + "f1;F1;F;One;North;B-1;1\n") == ["line 2: user f1: ok (unchanged)"]
    lines = users(site, header + "f1;F1;F;One;South;B-1;1\n")
    assert lines == ["line 2: user f1: ok (set profile_field_campus)"]
    # journaled as Moodle's upload triggers it: user_updated, the field before and after
    [updated] = journal(site)
    assert (updated["kind"], updated["id"]) == ("user_updated", uid)
    assert (updated["before"], updated["after"]) == (
        {"profile_field_campus": "North"},
        {"profile_field_campus": "South"},
    )
    # and undone: the field's value before the run given back through a users file
    undo = site.cli("undo", newest(site))
    assert undo.code == 0, undo.out + undo.err
    [written] = (site.area / ".postsync" / "undo").glob("*/undo.yml")
    assert site.cli("run", written).code == 0
    assert sorted(site.query(data, u=uid)) == [
        ("Campus", "North"),
        ("alumni", "1"),
        ("badge", "B-1"),
    ]
    # a column naming no field of the site rejects the file, applying nothing
    site.write("userimport.csv", "username;firstname;lastname;profile_field_nope\nz;Z;Z;1\n")
    result = site.run(steps=USERS_STEP)
    assert result.code == 3
    assert "column 'profile_field_nope': the site has no custom profile field 'nope'" in (
        result.out + result.err
    )
    assert site.query("SELECT COUNT(*) FROM mdl_user WHERE username = 'z'") == [(0,)]


def test_enrolling_columns_are_refused_with_a_pointer_to_enrolment_files(site: Site) -> None:
    site.write(
        "userimport.csv", "username;firstname;lastname;course1;role1\nz;Z;Z;MATH101;student\n"
    )
    result = site.run(steps=USERS_STEP)
    assert result.code == 3
    assert "column 'course1': a users file does not enrol" in result.out + result.err


def test_keys_collisions_and_renames(site: Site) -> None:
    header = "username;idnumber;firstname;lastname\n"
    lines = users(site, header + "u0002;U7777;A;B\nu0001.new;U0001;A;B\nu0003;U0001;A;B\n")
    # u0002 has idnumber U0002: the line's U7777 names nobody, its username another user
    assert lines[0] == (
        "line 2: user u0002: failed: no user has idnumber U7777, and username u0002 is"
        " another user's (idnumber U0002)"
    )
    # by idnumber, a changed username renames the user
    assert lines[1] == "line 3: user u0001.new: ok (set firstname, lastname, username)"
    assert user(site, "u0001.new", "idnumber") == ("U0001",)
    # renaming onto a username another user has fails
    assert lines[2] == "line 4: user u0003: failed: username u0003 is another user's"


def test_bad_values_fail_their_line_only(site: Site) -> None:
    header = "username;idnumber;firstname;lastname;email;country;lang;suspended\n"
    body = (
        "ok1;K1;A;B;a@b.org;FR;fr_CA;0\n"
        "bad one;K2;A;B;;;;\n"
        "k3;K3;A;B;nomail;;;\n"
        "k4;K4;A;B;;FRA;;\n"
        "k5;K5;;B;;;;\n"
        "k6;K6;A;B;;;;2\n"
    )
    lines = users(site, header + body)
    assert lines == [
        "line 2: user ok1: ok (created)",
        "line 3: user bad one: failed: username 'bad one' has characters Moodle does not"
        " allow in usernames (letters, digits and - . @ _; or set Moodle's"
        " extendedusernamechars)",
        "line 4: user k3: failed: email 'nomail' is not an e-mail address",
        "line 5: user k4: failed: country 'FRA' is not a two-letter country code",
        "line 6: user k5: failed: empty firstname",
        "line 7: user k6: failed: suspended must be one of 0, 1, not '2'",
    ]
    assert user(site, "ok1", "lang", "country") == ("fr_ca", "FR")


def test_a_user_deleted_by_the_run_is_no_longer_found_by_its_later_files(site: Site) -> None:
    site.write(
        "userimport.csv", "username;idnumber;firstname;lastname;deleted\nu0002;U0002;A;B;1\n"
    )
    site.write(
        "enrols.csv",
        "cmd;cid;uid;rolename\nadd;MATH101;U0002;student\nadd;MATH101;U0003;student\n",
    )
    steps = USERS_STEP + "  - command: enrolments\n    file: enrols*.csv\n"
    preview = site.run("--check", steps=steps)
    result = site.run(steps=steps)
    summary = "enrols.csv  (2 lines: 1 changed, 0 unchanged, 1 failed)"
    assert summary in preview.out and summary in result.out, preview.out + result.out
    assert site.enrolled("MATH101", "U0003") == [("student", 0)]


RENAMES = (
    "username;idnumber;firstname;lastname\n"
    # a chain whose later user has the smaller id: U0003 leaves u0003, U0002 takes it
    "u0003.old;U0003;A;B\n"
    "u0003;U0002;A;B\n"
    # a swap through a name of the file's: U0004 and U0005 trade usernames
    "tmp45;U0004;A;B\n"
    "u0004;U0005;A;B\n"
    "u0005;U0004;A;B\n"
    # a cycle in three: U0006 -> u0007, U0007 -> u0008, U0008 -> u0006
    "t6;U0006;A;B\n"
    "u0006;U0008;A;B\n"
    "u0008;U0007;A;B\n"
    "u0007;U0006;A;B\n"
    # a true collision: u0009 stays U0009's at the end of the file
    "u0009;U0010;A;B\n"
)


@pytest.mark.parametrize("size", [1, 2, 5, 2000])
def test_rename_chains_and_swaps_apply_in_any_batch(
    site: Site, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runner.sync.apply

    monkeypatch.setattr(runner.sync.apply, "BATCH", {"": size, "sqlite": size})
    lines = users(site, RENAMES)
    names = ["u0003.old", "u0003", "tmp45", "u0004", "u0005", "t6", "u0006", "u0008", "u0007"]
    assert lines[:-1] == [
        f"line {n}: user {name}: ok (set "
        + ("username)" if name in ("u0005", "u0007") else "firstname, lastname, username)")
        for n, name in enumerate(names, start=2)
    ]
    assert lines[-1] == "line 11: user u0009: failed: username u0009 is another user's"
    held = dict(
        site.query(
            "SELECT idnumber, username FROM mdl_user WHERE idnumber IN"
            " ('U0002', 'U0003', 'U0004', 'U0005', 'U0006', 'U0007', 'U0008', 'U0009', 'U0010')"
        )
    )
    assert held == {
        "U0002": "u0003",
        "U0003": "u0003.old",
        "U0004": "u0005",
        "U0005": "u0004",
        "U0006": "u0007",
        "U0007": "u0008",
        "U0008": "u0006",
        "U0009": "u0009",
        "U0010": "u0010",
    }
    # the file again: every line is now unchanged but the ones that pass through a
    # name (tmp45, t6) and the collision
    again = users(site, RENAMES)
    assert sum(line.endswith("failed: username u0009 is another user's") for line in again) == 1


def test_a_username_a_deleted_row_kept_fails_the_line_not_the_file(site: Site) -> None:
    # a user deleted outside Moodle's delete_user: its row keeps its username
    site.execute("UPDATE mdl_user SET deleted = 1 WHERE username = 'u0011'")
    header = "username;idnumber;firstname;lastname\n"
    lines = users(site, header + "u0011;N1;A;B\nu0012;U0013;A;B\nu0011;U0014;A;B\nn2;N2;A;B\n")
    (deleted,) = user(site, "u0011", "id")
    taken = f"username u0011 is a deleted user's (id {deleted}, deleted without its username"
    assert lines == [
        f"line 2: user u0011: failed: {taken} being rewritten)",
        "line 3: user u0012: failed: username u0012 is another user's",
        f"line 4: user u0011: failed: {taken} being rewritten)",
        "line 5: user n2: ok (created)",
    ]


def test_site_admins_and_the_guest_are_left_alone_unless_allowed(site: Site) -> None:
    header = "username;idnumber;firstname;lastname;suspended;auth;password\n"
    body = header + "admin;;Admin;User;1;nologin;Pwned1!\nguest;;Guest;User;1;;\n"
    before = site.query("SELECT * FROM mdl_user WHERE id IN (1, 2) ORDER BY id")
    lines = users(site, body, options="    user_key: username\n    update_passwords: true\n")
    refused = "a users file does not change it, as Moodle's user upload does not"
    allow = "(allow_admin_updates: true on the step allows it)"
    assert lines == [
        f"line 2: user admin: failed: admin is a site administrator: {refused} {allow}",
        f"line 3: user guest: failed: guest is the guest user: {refused} {allow}",
    ]
    assert site.query("SELECT * FROM mdl_user WHERE id IN (1, 2) ORDER BY id") == before
    # a line changing nothing of theirs is no failure
    same = header + "admin;;Admin;User;0;manual;\n"
    site.execute("UPDATE mdl_user SET firstname = 'Admin', lastname = 'User' WHERE id = 2")
    assert users(site, same, options="    user_key: username\n") == [
        "line 2: user admin: ok (unchanged)"
    ]
    # the step's option allows it
    allowed = "    user_key: username\n    allow_admin_updates: true\n"
    assert users(site, header + "admin;;Admin;Two;;;\n", options=allowed) == [
        "line 2: user admin: ok (set lastname)"
    ]
    assert user(site, "admin", "lastname", "suspended") == ("Two", 0)


def test_an_auth_plugin_the_site_has_not_enabled_fails_the_line(site: Site) -> None:
    header = "username;idnumber;firstname;lastname;auth\n"
    site.execute("INSERT INTO mdl_config (name, value) VALUES ('auth', 'ldap,cas')")
    body = (
        header + "a1;A1;A;B;manuel\na2;A2;A;B;cas\na3;A3;A;B;nologin\nu0001;U0001;A;B;shibboleth\n"
    )
    enabled = "enabled: manual, nologin, ldap, cas"
    assert users(site, body) == [
        f"line 2: user a1: failed: auth manuel is not an enabled authentication plugin of"
        f" the site ({enabled})",
        "line 3: user a2: ok (created)",
        "line 4: user a3: ok (created)",
        f"line 5: user u0001: failed: auth shibboleth is not an enabled authentication"
        f" plugin of the site ({enabled})",
    ]
    assert user(site, "u0001", "auth") == ("manual",)
    # a user whose plugin was disabled since keeps it: only a change is checked
    site.execute("UPDATE mdl_config SET value = '' WHERE name = 'auth'")
    assert users(site, header + "a2;A2;A;B;cas\n") == ["line 2: user a2: ok (unchanged)"]


@pytest.mark.parametrize(
    ("email", "valid"),
    [
        ("jdoe@example.org", True),
        ("o'neil+tag@mail.example.co.uk", True),
        ('"j.doe"@example.org', True),
        ("x@[192.0.2.1]", True),
        ("x@[IPv6:2001:db8::1]", True),
        ("<script>@x.y", False),
        ("a@b.org<script>", False),
        ("a@localhost", False),
        ("a..b@example.org", False),
        (".a@example.org", False),
        ("a@-example.org", False),
        ("a@example-.org", False),
        ("a@example.1org", False),
        ("a@[300.1.1.1]", False),
        ("a b@example.org", False),
        ("é@example.org", False),
        ("a@" + "b" * 64 + ".org", False),
        ("a" * 65 + "@example.org", False),
    ],
)
def test_emails_are_validated_as_moodles_validate_email(email: str, valid: bool) -> None:
    from runner.sync.users.fields import valid_email

    assert valid_email(email) is valid


def test_an_email_moodle_refuses_fails_its_line(site: Site) -> None:
    header = "username;idnumber;firstname;lastname;email\n"
    lines = users(site, header + "e1;E1;A;B;<script>@x.y\ne2;E2;A;B;e2@example.org\n")
    assert lines == [
        "line 2: user e1: failed: email '<script>@x.y' is not an e-mail address",
        "line 3: user e2: ok (created)",
    ]


MAYFLY = "mayfly;U7002;May;Fly;mayfly@example.org;0\nmayfly;U7002;May;Fly;mayfly@example.org;1\n"


@pytest.mark.parametrize("split", ["files", "batches"])
def test_the_same_address_deleted_three_times_in_a_run_takes_three_names(
    site: Site, split: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # delete_user's new username is the address .<time>, a number up while another
    # user has it: the second and third deletions of the run find .<time> and
    # .<time+1> in the database, written by the first files or batches
    import runner.sync.apply

    header = "username;idnumber;firstname;lastname;email;deleted\n"
    if split == "files":
        for n in (1, 2, 3):
            site.write(f"users_{n}.csv", header + MAYFLY)
    else:
        monkeypatch.setattr(runner.sync.apply, "BATCH", {"": 2, "sqlite": 2})
        site.write("users_1.csv", header + MAYFLY * 3)
    result = site.run(steps="  - command: users\n    file: users_*.csv\n")
    assert result.code == 0, result.out
    deleted = site.query(
        "SELECT username, email, idnumber FROM mdl_user WHERE deleted = 1"
        " AND username LIKE 'mayfly@example.org.%' ORDER BY id"
    )
    assert len(deleted) == 3, deleted
    stamps = [int(name.rpartition(".")[2]) for name, _, _ in deleted]
    assert stamps == [stamps[0], stamps[0] + 1, stamps[0] + 2], deleted
    assert {(email, idnumber) for _, email, idnumber in deleted} == {
        (hashlib.md5(b"mayfly").hexdigest(), "")
    }
