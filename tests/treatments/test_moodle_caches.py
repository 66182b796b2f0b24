"""purge_moodle_caches through `postsync run`.

Moodle's own script runs in tests/moodle (the lab); here a stand-in site directory
holds a purge_caches.php that a real interpreter (this Python) runs, recording how it
was called, so what postsync passes, when it runs it and how it reports its failure
are checked without PHP.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.sync.conftest import ENROLMENTS_STEP, Site

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

HEADER = "cmd;cid;uid;rolename;enrol;starttime;endtime;gcmd;g1;g2\n"
SCRIPT = """\
import json, os, sys
with open(os.path.join(os.path.dirname(__file__), "calls.jsonl"), "a") as out:
    out.write(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}))
    out.write("\\n")
sys.stdout.write(os.environ.get("FAKE_OUTPUT", ""))
sys.exit(int(open(os.path.join(os.path.dirname(__file__), "status")).read()))
"""


def moodle_site(root: Path, status: int = 0) -> Path:
    dirroot = root / "moodle"
    (dirroot / "admin" / "cli").mkdir(parents=True)
    (dirroot / "config.php").write_text("<?php // stand-in\n")
    (dirroot / "admin" / "cli" / "purge_caches.php").write_text(SCRIPT)
    (dirroot / "admin" / "cli" / "status").write_text(str(status))
    return dirroot


def calls(dirroot: Path) -> list[dict[str, object]]:
    log = dirroot / "admin" / "cli" / "calls.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def purge_playbook(site: Site, params: str) -> None:
    site.playbook(ENROLMENTS_STEP, "")
    text = (site.root / "playbook.yml").read_text()
    (site.root / "playbook.yml").write_text(
        text + f"post_treatments:\n  - name: caches\n    purge_moodle_caches: {params}\n"
    )


ME = pwd.getpwuid(os.geteuid()).pw_name


def params(dirroot: Path, extra: str = "", run_as: str = ME) -> str:
    """As postsync's own user, named (as root too: run_as names root knowingly)."""
    who = f", run_as: {run_as}" if run_as else ""
    return f'{{moodle_dir: "{dirroot}", php: ["{sys.executable}"]{who}{extra}}}'


def test_runs_moodles_script_once_the_run_changed_the_database(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    dirroot = moodle_site(site.root)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;;;\n")
    purge_playbook(site, params(dirroot, ", caches: [muc, theme]"))
    monkeypatch.setenv("POSTSYNC_DB_PASSWORD", "s3cret-value")
    preview = site.run("--check")
    assert preview.code == 0, preview.out
    assert f"run {sys.executable} {dirroot}/admin/cli/purge_caches.php --muc --theme" in (
        preview.out
    )
    assert calls(dirroot) == []  # the preview runs nothing
    result = site.run()
    assert result.code == 0, result.out
    (call,) = calls(dirroot)
    assert call["argv"] == ["--muc", "--theme"]
    assert call["cwd"] == str(dirroot)
    env = call["env"]
    assert isinstance(env, dict)
    assert "POSTSYNC_DB_PASSWORD" not in env  # none of postsync's secrets
    assert set(env) <= {"PATH", "LANG", "LC_ALL", "TZ", "LC_CTYPE"}
    assert "purged in" in result.out
    # nothing changed: nothing for Moodle to see, the script does not run
    again = site.run()
    assert again.code == 0, again.out
    assert "the run changed nothing in Moodle's database" in again.out
    assert len(calls(dirroot)) == 1


def test_a_failing_script_fails_the_step_with_its_output(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    dirroot = moodle_site(site.root, status=3)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;;;\n")
    purge_playbook(site, params(dirroot))
    monkeypatch.setenv("FAKE_OUTPUT", "")
    result = site.run()
    assert result.code == 3, result.out
    assert "admin/cli/purge_caches.php exited with status 3: no output" in result.out
    assert site.enrolled("MATH101", "U0001")  # the sync's work stays


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("no_config", "holds no config.php: is it the site's dirroot?"),
        ("no_script", "holds no admin/cli/purge_caches.php"),
        ("no_php", "php: no-such-php-binary is not an executable found on PATH"),
        ("no_user", "run_as: no user no-such-user-here on this machine"),
    ],
)
def test_what_keeps_the_script_from_running_fails_the_preview_too(
    site: Site, setup: str, message: str
) -> None:
    dirroot = moodle_site(site.root)
    if setup == "no_config":
        (dirroot / "config.php").unlink()
    elif setup == "no_script":
        (dirroot / "admin" / "cli" / "purge_caches.php").unlink()
    text = params(dirroot, run_as="no-such-user-here" if setup == "no_user" else ME)
    if setup == "no_php":
        text = f'{{moodle_dir: "{dirroot}", php: [no-such-php-binary]}}'
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;;;\n")
    purge_playbook(site, text)
    for args in (("--check",), ()):
        result = site.run(*args)
        assert result.code == 3, result.out
        assert message in result.out
    assert calls(dirroot) == []


def test_root_is_asked_for_the_web_servers_user(site: Site) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: run_as switches user")
    dirroot = moodle_site(site.root)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;;;\n")
    purge_playbook(site, params(dirroot, run_as=""))
    result = site.run()
    assert result.code == 3, result.out
    assert "postsync runs as root: set run_as to the web server's user" in result.out
    assert calls(dirroot) == []
    # as the site's user: the script runs as that user, with that user's home (a site
    # the user can read, run by the system's shell)
    shared = Path(tempfile.mkdtemp(prefix="postsync-site-"))
    try:
        shared.chmod(0o755)
        (shared / "admin" / "cli").mkdir(parents=True)
        (shared / "config.php").write_text("<?php // stand-in\n")
        (shared / "admin" / "cli" / "purge_caches.php").write_text(
            'echo "$(id -u) $HOME $*" > "$(dirname "$0")/ran"\n'
        )
        for part in (shared / "admin", shared / "admin" / "cli"):
            part.chmod(0o777)
        site.write("enrols.csv", HEADER + "add;MATH101;U0002;student;;;;;;\n")
        purge_playbook(
            site, f'{{moodle_dir: "{shared}", php: [/bin/sh], run_as: nobody, caches: [muc]}}'
        )
        result = site.run()
        assert result.code == 0, result.out
        nobody = pwd.getpwnam("nobody")
        ran = (shared / "admin" / "cli" / "ran").read_text().split()
        assert ran == [str(nobody.pw_uid), nobody.pw_dir, "--muc"]
    finally:
        shutil.rmtree(shared)


def test_a_deleted_group_is_a_change_to_make_visible(site: Site) -> None:
    dirroot = moodle_site(site.root)
    # U0001 is already a student of MATH101: the line changes nothing, the cleanup
    # deletes the course's empty groups
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;;;\n")
    site.run(steps=ENROLMENTS_STEP)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;;;\n")
    purge_playbook(site, params(dirroot))
    text = (site.root / "playbook.yml").read_text()
    text = text.replace("post_treatments:\n", "post_treatments:\n  - clean_empty_groups: {}\n")
    (site.root / "playbook.yml").write_text(text)
    preview = site.run("--check")
    assert preview.code == 0, preview.out
    assert "delete group" in preview.out
    assert "purge_caches.php --muc" in preview.out
    result = site.run()
    assert result.code == 0, result.out
    assert "1 line: 0 changed, 1 unchanged" in result.out
    assert len(calls(dirroot)) == 1
