"""What the sync takes from the site, through `postsync run` on SQLite, PostgreSQL and
MariaDB: the enrol_manual settings of a manual instance it creates (Moodle's
add_default_instance), and the modifierid it writes."""

from __future__ import annotations

from tests.sync.conftest import ENROLMENTS_STEP, Site
from tests.sync.test_enrolments import HEADER, report, sync


def drop_instances(site: Site, course: str) -> None:
    site.execute(
        "DELETE FROM mdl_enrol WHERE courseid = (SELECT id FROM mdl_course WHERE idnumber = :c)",
        c=course,
    )


def setting(site: Site, plugin: str, name: str, value: str) -> None:
    site.execute(
        "INSERT INTO mdl_config_plugins (plugin, name, value) VALUES (:p, :n, :v)",
        p=plugin,
        n=name,
        v=value,
    )


def test_a_new_manual_instance_takes_the_sites_enrol_manual_settings(site: Site) -> None:
    drop_instances(site, "PHYS101")
    (teacher,) = site.query("SELECT id FROM mdl_role WHERE shortname = 'teacher'")[0]
    for name, value in (
        ("roleid", str(teacher)),
        ("enrolperiod", "3600"),
        ("expirynotify", "2"),
        ("expirythreshold", "172800"),
        ("status", "0"),
    ):
        setting(site, "enrol_manual", name, value)
    setting(site, "enrol_self", "enrolperiod", "99")  # another plugin's: not read
    sync(site, "add;PHYS101;U0001;student;;;;;;\n")
    assert site.query(
        "SELECT e.status, e.roleid, e.enrolperiod, e.expirynotify, e.notifyall,"
        " e.expirythreshold FROM mdl_enrol e JOIN mdl_course c ON c.id = e.courseid"
        " WHERE c.idnumber = 'PHYS101'"
    ) == [(0, teacher, 3600, 2, 1, 172800)]
    assert site.enrolled("PHYS101", "U0001") == [("student", 0)]


def test_new_manual_instances_disabled_by_the_site_fail_the_line(site: Site) -> None:
    drop_instances(site, "PHYS101")
    setting(site, "enrol_manual", "status", "1")
    site.write("enrols.csv", HEADER + "add;PHYS101;U0001;student;;;;;;\n")
    result = site.run(steps=ENROLMENTS_STEP)
    assert result.code == 2, result.out
    assert report(site) == [
        "line 2: add student U0001 in PHYS101: failed: the manual enrolment instance of"
        " course PHYS101 would be, by the site's enrol_manual settings, disabled in Moodle"
        " (enable it, or set allow_disabled_instances: true)"
    ]
    assert site.query(
        "SELECT COUNT(*) FROM mdl_enrol e JOIN mdl_course c ON c.id = e.courseid"
        " WHERE c.idnumber = 'PHYS101'"
    ) == [(0,)]
    result = site.run(steps=ENROLMENTS_STEP + "    allow_disabled_instances: true\n")
    assert result.code == 0, result.out
    assert site.query(
        "SELECT e.status FROM mdl_enrol e JOIN mdl_course c ON c.id = e.courseid"
        " WHERE c.idnumber = 'PHYS101'"
    ) == [(1,)]


def modifiers(site: Site, user: str) -> list[tuple[int, int]]:
    return site.query(
        "SELECT ue.modifierid, ra.modifierid FROM mdl_user u JOIN mdl_user_enrolments ue"
        " ON ue.userid = u.id JOIN mdl_role_assignments ra ON ra.userid = u.id"
        " WHERE u.idnumber = :u",
        u=user,
    )


def test_modifierid_is_zero_a_user_or_the_sites_admin(site: Site) -> None:
    sync(site, "add;MATH101;U0001;student;;;;;;\n")
    assert modifiers(site, "U0001") == [(0, 0)]
    site.write("enrols.csv", HEADER + "add;MATH101;U0002;student;;;;;;\n")
    assert site.run(steps=ENROLMENTS_STEP + "    modifierid: 7\n").code == 0
    assert modifiers(site, "U0002") == [(7, 7)]
    # admin: the first of the site's siteadmins; without that setting the step fails
    admin_step = ENROLMENTS_STEP + "    modifierid: admin\n"
    site.execute("DELETE FROM mdl_config WHERE name = 'siteadmins'")
    site.write("enrols.csv", HEADER + "add;MATH101;U0003;student;;;;;;\n")
    result = site.run(steps=admin_step)
    assert result.code == 3, result.out
    assert "the site's config has no siteadmins setting" in result.out + result.err
    assert site.enrolled("MATH101", "U0003") == []
    site.execute("INSERT INTO mdl_config (name, value) VALUES ('siteadmins', '2,5')")
    assert site.run(steps=admin_step).code == 0
    assert modifiers(site, "U0003") == [(2, 2)]
    result = site.run(steps=ENROLMENTS_STEP + "    modifierid: -1\n")
    assert result.code == 4
    assert "modifierid" in result.err
