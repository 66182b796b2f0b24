"""What a user logging in, or already logged in, meets after postsync: a password
postsync set, the course page of a session already open when postsync changed the
user's groups. Each check on a fresh clone of the seeded site, postsync run through its
CLI, Moodle's own code asked in a new PHP process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import postsync_process
from tests.moodle.lab import Site
from tests.moodle.test_moodle_api import members_file, sync

#: the first release whose groups_add_member and groups_remove_member reset the course
#: state of every open session (4.5.1, its version 2024100701)
COURSE_STATE_RESET = (4, 5, 1)


@pytest.mark.parametrize("how", ["enrolments gdel", "group_members del"])
def test_an_open_sessions_course_page_after_a_group_change(
    site: Site, lab_twin: Site, tmp_path: Path, how: str
) -> None:
    """S009 (in group G1 of C101) has the course page open when they leave G1: through
    postsync on one site (an enrolments line's gdel, or a group-members file's del),
    through Moodle's groups_remove_member on a twin. At the session's next request, its
    course state key (core_courseformat's session cache) is kept or made again the same
    way on both: kept on 4.2, made again from 4.5.1, where Moodle resets every open
    session's course state on a membership change (and postsync moves the course's
    cache revision on, what Moodle's check of that key reads)."""
    saved = {each.name: each.lab.inbox / f"{each.name}.session" for each in (site, lab_twin)}
    for each in (site, lab_twin):
        assert each.php("course_state.php", "open", "MATH101", "S009", str(saved[each.name])) == {
            "opened": True
        }
    if how == "enrolments gdel":
        assert "1 changed" in sync(site, tmp_path, "add;C101;S009;student;manual;gdel;G1\n")
    else:
        done = members_file(site, tmp_path, "cmd;courseid;groupid;userid\ndel;C101;C101-G1;S009\n")
        assert done.returncode == 0 and "1 changed" in done.stdout, done.stdout
    lab_twin.php("moodle_change.php", "gdel", "MATH101", "S009", "G1")
    ours = site.php("course_state.php", "next", "MATH101", "S009", str(saved[site.name]))
    moodles = lab_twin.php("course_state.php", "next", "MATH101", "S009", str(saved[lab_twin.name]))
    assert ours == moodles
    assert moodles == {"kept": site.lab.version < COURSE_STATE_RESET}


def test_moodles_cache_purge_keeps_an_open_sessions_course_page(site: Site) -> None:
    """Moodle's own cache purge (admin/cli/purge_caches.php --muc, what a
    purge_moodle_caches step runs) leaves an open session's course state key as it was:
    each session keeps its own, so a purge is no way to reset open course pages; a new
    cache revision of the course is (above)."""
    saved = str(site.lab.inbox / f"{site.name}.session")
    assert site.php("course_state.php", "open", "MATH101", "S009", saved) == {"opened": True}
    site.lab.php_command("admin/cli/purge_caches.php", "--muc", site=site.name)
    assert site.php("course_state.php", "next", "MATH101", "S009", saved) == {"kept": True}


def users_file(site: Site, tmp_path: Path, body: str) -> str:
    """A users file with `update_passwords: true` through postsync's CLI; its output."""
    area = tmp_path / "area"
    area.mkdir(parents=True, exist_ok=True)
    (area / "users.csv").write_text(body)
    playbook = tmp_path / "users.yml"
    playbook.write_text(
        f'name: Lab\narea: area\ndatabase: "{site.url}"\nsync:\n'
        "  - command: users\n    file: users.csv\n    update_passwords: true\n"
    )
    done = postsync_process("run", playbook)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_password_postsync_sets_logs_in_and_the_same_file_then_changes_nothing(
    site: Site, tmp_path: Path
) -> None:
    """A users file (with `update_passwords: true`) creates lab1 with a password: Moodle's
    authenticate_user_login accepts it (from Moodle 4.3 it stores the password hashed
    again with its own scheme, SHA-512 crypt, as the user logs in); the same file run
    again after that login changes nothing, and the password still logs in."""
    body = "username;firstname;lastname;email;password\n"
    body += "lab1;Lab;One;lab1@example.com;Lab-pass-123!\n"
    assert "1 changed" in users_file(site, tmp_path, body)
    first = site.php("password.php", "lab1", "Lab-pass-123!")
    assert first["logs_in"], first
    again = users_file(site, tmp_path / "again", body)
    second = site.php("password.php", "lab1", "Lab-pass-123!")
    assert "changed=0" in again, (
        f"the same file after a login changed the user again (the stored hash: {first['before']}"
        f" as postsync wrote it, {first['after']} after Moodle's login, {second['before']} after"
        " the second run)"
    )
    assert second == {
        "before": first["after"],
        "logs_in": True,
        "failure": 0,
        "after": first["after"],
    }
