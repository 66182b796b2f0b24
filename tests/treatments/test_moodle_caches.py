"""purge_moodle_caches through `postsync run`.

Moodle's own script runs in tests/moodle (the lab); here a stand-in site directory
holds a purge_caches.php that a real interpreter (this Python) runs, recording how it
was called, so what postsync passes, when it runs it and how it reports its failure
are checked without PHP.
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.db.tables import moodle_tables
from tests.conftest import CLI, POSTSYNC
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


ME = pwd.getpwuid(os.geteuid()).pw_name
AS_ROOT = os.geteuid() == 0
#: who the script runs as: postsync's own user, or (postsync running as root, which
#: the script never runs as) an unprivileged one
SCRIPT_USER = "nobody" if AS_ROOT else ME
#: an interpreter the script's user can run (root's own may be under /root)
INTERPRETER = "/usr/bin/python3" if AS_ROOT else sys.executable


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Path]:
    """Where a stand-in site goes: tmp_path, or as root a directory the script's
    user can reach (root's pytest directories are root's only)."""
    if not AS_ROOT:
        yield tmp_path
        return
    if not os.access(INTERPRETER, os.X_OK):
        pytest.skip(f"no {INTERPRETER} for the script's user")
    where = Path(tempfile.mkdtemp(prefix="postsync-site-"))
    where.chmod(0o755)
    try:
        yield where
    finally:
        shutil.rmtree(where)


def moodle_site(root: Path, status: int = 0, script: str = SCRIPT) -> Path:
    dirroot = root / "moodle"
    (dirroot / "admin" / "cli").mkdir(parents=True)
    (dirroot / "config.php").write_text("<?php // stand-in\n")
    (dirroot / "admin" / "cli" / "purge_caches.php").write_text(script)
    (dirroot / "admin" / "cli" / "status").write_text(str(status))
    for part in (dirroot, dirroot / "admin", dirroot / "admin" / "cli"):
        part.chmod(0o777)  # the script (as run_as) writes what it saw there
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


def params(
    dirroot: Path, extra: str = "", run_as: str = SCRIPT_USER, php: str = INTERPRETER
) -> str:
    """As postsync's own user, named, or as root as an unprivileged user."""
    who = f", run_as: {run_as}" if run_as else ""
    return f'{{moodle_dir: "{dirroot}", php: ["{php}"]{who}{extra}}}'


def test_runs_moodles_script_once_the_run_changed_the_database(
    site: Site, shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dirroot = moodle_site(shared)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;;;\n")
    purge_playbook(site, params(dirroot, ", caches: [muc, theme]"))
    monkeypatch.setenv("POSTSYNC_DB_PASSWORD", "s3cret-value")
    preview = site.run("--check")
    assert preview.code == 0, preview.out
    assert f"run {INTERPRETER} {dirroot}/admin/cli/purge_caches.php --muc --theme" in (preview.out)
    assert calls(dirroot) == []  # the preview runs nothing
    result = site.run()
    assert result.code == 0, result.out
    (call,) = calls(dirroot)
    assert call["argv"] == ["--muc", "--theme"]
    assert call["cwd"] == str(dirroot)
    env = call["env"]
    assert isinstance(env, dict)
    assert "POSTSYNC_DB_PASSWORD" not in env  # none of postsync's secrets
    assert set(env) <= {"PATH", "LANG", "LC_ALL", "TZ", "LC_CTYPE", "HOME"}
    assert "purged in" in result.out
    # nothing changed: nothing for Moodle to see, the script does not run
    again = site.run()
    assert again.code == 0, again.out
    assert "the run changed nothing in Moodle's database" in again.out
    assert len(calls(dirroot)) == 1


def test_a_failing_script_fails_the_step_with_its_output(
    site: Site, shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dirroot = moodle_site(shared, status=3)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;;;\n")
    purge_playbook(site, params(dirroot))
    monkeypatch.setenv("FAKE_OUTPUT", "")
    result = site.run()
    assert result.code == 3, result.out
    assert "admin/cli/purge_caches.php exited with status 3: no output" in result.out
    assert site.enrolled("MATH101", "U0001")  # the sync's work stays


def public_site(root: Path) -> tuple[Path, Path]:
    """A stand-in of Moodle 5.1's layout: config.php and admin/cli at the top, the
    dirroot in public/ (version.php, plugins, and a config.php that loads the one
    above); (the top directory, public/)."""
    top = moodle_site(root)
    public = top / "public"
    public.mkdir()
    (public / "config.php").write_text("<?php require_once(__DIR__ . '/../config.php');\n")
    (public / "version.php").write_text("<?php // stand-in\n")
    return top, public


@pytest.mark.parametrize("given", ["top", "public"])
def test_moodle_51s_dirroot_or_top_directory_runs_the_script_from_the_top(
    site: Site, shared: Path, given: str
) -> None:
    """From Moodle 5.1 the dirroot is public/, and config.php and admin/cli stay in the
    directory above: either may be given."""
    top, public = public_site(shared)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;;;\n")
    purge_playbook(site, params(top if given == "top" else public))
    assert site.cli("validate", site.root / "playbook.yml").code == 0
    preview = site.run("--check")
    assert preview.code == 0, preview.out + preview.err
    assert f"run {INTERPRETER} {top}/admin/cli/purge_caches.php --muc" in preview.out
    assert f"in {top})\n" in preview.out
    result = site.run()
    assert result.code == 0, result.out + result.err
    (call,) = calls(top)
    assert call["cwd"] == str(top)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("no_dir", "moodle_dir: {dirroot}/gone is not a directory"),
        (
            "no_config",
            "moodle_dir: {dirroot} holds no config.php: is it the site's directory (its"
            " dirroot, or the directory above Moodle 5.1's public/)?",
        ),
        ("no_script", "moodle_dir: {dirroot} holds no admin/cli/purge_caches.php"),
        (
            "public_no_script",
            "moodle_dir: {dirroot}/public holds no admin/cli/purge_caches.php (nor does the"
            " directory above it)",
        ),
        ("no_php", "php: no-such-php-binary is not an executable found on PATH"),
        ("no_user", "run_as: no user no-such-user-here on this machine"),
    ],
)
def test_what_keeps_the_script_from_running_fails_before_anything_runs(
    site: Site, shared: Path, setup: str, message: str
) -> None:
    """A step that could not run Moodle's script fails the preview and the run before
    the sync steps write anything (the playbook's line, exit 4): a run that synced and
    then could not purge would leave its changes unseen by Moodle. `validate` warns of
    it with the same line and exits 0: the playbook is right, and CI checks it on a
    machine that is not the site's."""
    dirroot = moodle_site(shared)
    given = dirroot
    if setup == "no_dir":
        given = dirroot / "gone"
    elif setup == "no_config":
        (dirroot / "config.php").unlink()
    elif setup in ("no_script", "public_no_script"):
        (dirroot / "admin" / "cli" / "purge_caches.php").unlink()
        if setup == "public_no_script":
            given = public_site(shared / "other")[1]
            (given.parent / "admin" / "cli" / "purge_caches.php").unlink()
            message = message.replace("{dirroot}", str(given.parent))
    text = params(given, run_as="no-such-user-here" if setup == "no_user" else SCRIPT_USER)
    if setup == "no_php":
        text = f'{{moodle_dir: "{dirroot}", php: [no-such-php-binary]}}'
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;;;\n")
    purge_playbook(site, text)
    validated = site.cli("validate", site.root / "playbook.yml")
    assert validated.code == 0, validated.out + validated.err
    assert validated.out.startswith("ok  "), validated.out
    assert "postsync: warning: " in validated.err
    assert "(on this machine: a run here would stop before any step)" in validated.err
    for result in (validated, site.run("--check"), site.run()):
        assert result.code == (0 if result is validated else 4), result.out + result.err
        assert "post_treatments[0].purge_moodle_caches." + message.format(
            dirroot=dirroot
        ) in " ".join(result.err.split())
    assert not site.enrolled("MATH101", "U0001")  # the sync step wrote nothing
    assert calls(dirroot) == []


def test_root_is_asked_for_the_web_servers_user(site: Site) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: run_as switches user")
    dirroot = moodle_site(site.root)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;;;\n")
    purge_playbook(site, params(dirroot, run_as=""))
    result = site.run()
    assert result.code == 4, result.out + result.err
    assert "postsync runs as root: set run_as to the web server's user" in result.err
    assert not site.enrolled("MATH101", "U0001")  # found before the sync wrote
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


def test_a_deleted_group_is_a_change_to_make_visible(site: Site, shared: Path) -> None:
    dirroot = moodle_site(shared)
    # U0001 is already a student of MATH101: the line changes nothing, the cleanup
    # deletes the course's empty groups (the demo's, made in Moodle: all_empty)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;;;\n")
    site.run(steps=ENROLMENTS_STEP)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;;;\n")
    purge_playbook(site, params(dirroot))
    text = (site.root / "playbook.yml").read_text()
    text = text.replace(
        "post_treatments:\n", "post_treatments:\n  - clean_empty_groups: {groups: all_empty}\n"
    )
    (site.root / "playbook.yml").write_text(text)
    preview = site.run("--check")
    assert preview.code == 0, preview.out
    assert "delete group" in preview.out
    assert "purge_caches.php --muc" in preview.out
    result = site.run()
    assert result.code == 0, result.out
    assert "1 line: 0 changed, 1 unchanged" in result.out
    assert len(calls(dirroot)) == 1


def test_the_environment_given_to_the_script_is_never_printed(site: Site, shared: Path) -> None:
    """A config.php's password passed in `environment` and echoed back by a failing
    script is masked in the step's error, in every output and in the run record."""
    dirroot = moodle_site(shared, status=3)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;;;\n")
    secret = "Moodle-DB-pw-7781"
    purge_playbook(site, params(dirroot, f', environment: {{FAKE_OUTPUT: "said {secret}"}}'))
    for args in ((), ("--output", "json")):
        site.write("enrols.csv", HEADER + f"add;MATH101;U000{len(args) + 2};student;;;;;;\n")
        result = site.run(*args)
        assert result.code == 3, result.out
        assert "exited with status 3" in result.out
        assert secret not in result.out + result.err
        assert "exited with status 3: ***" in result.out
    (call, _) = calls(dirroot)
    env = call["env"]
    assert isinstance(env, dict) and env["FAKE_OUTPUT"] == f"said {secret}"  # it got it
    for record in (site.area / ".postsync" / "runs").rglob("*"):
        if record.is_file():
            assert secret not in record.read_text(errors="replace"), record


@pytest.mark.parametrize("name", ["root", "toor"])
def test_the_script_never_runs_as_root_whatever_its_name(
    site: Site, shared: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    if name == "toor":  # another name of uid 0, as some systems have
        real = pwd.getpwnam

        def getpwnam(user: str) -> pwd.struct_passwd:
            if user == "toor":
                root = real("root")
                return pwd.struct_passwd(("toor", *tuple(root)[1:]))
            return real(user)

        monkeypatch.setattr(pwd, "getpwnam", getpwnam)
    dirroot = moodle_site(shared)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;;;\n")
    purge_playbook(site, params(dirroot, run_as=name))
    for args in (("--check",), ()):
        result = site.run(*args)
        assert result.code == 4, result.out + result.err
        assert f"run_as: {name} is root (uid 0): the script never runs as root" in result.err
    assert calls(dirroot) == []


PEEK = """\
seen="$(dirname "$0")/seen"
if tr '\\0' '\\n' < /proc/$PPID/environ > "$seen.environ" 2>/dev/null
then echo "environ read" >> "$seen"; else echo "environ denied" >> "$seen"; fi
if ls /proc/$PPID/fd > /dev/null 2>&1
then echo "fd read" >> "$seen"; else echo "fd denied" >> "$seen"; fi
if cat /proc/$PPID/maps > /dev/null 2>&1
then echo "maps read" >> "$seen"; else echo "maps denied" >> "$seen"; fi
ls /proc/self/fd > "$seen.fds"
"""


def in_a_process_of(user: pwd.struct_passwd, run: Callable[[], int]) -> int:
    """`run()` in a forked process of `user`'s, dumpable as any process that user
    starts (a change of user leaves a process non-dumpable)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        code = 99
        try:
            if user.pw_uid != os.geteuid():
                os.setgroups([])
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)
            ctypes.CDLL(None, use_errno=True).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE
            code = run()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_the_script_reads_nothing_of_postsyncs_process(db_url: str, shared: Path, cli: CLI) -> None:
    """Without run_as the site's code runs as postsync's own user: postsync makes its
    process non-dumpable first, so /proc/PID/environ (the database password it was
    given), its descriptors and its memory map stay closed to the script."""
    user = pwd.getpwnam(SCRIPT_USER)
    url = f"sqlite:///{shared / 'moodle.db'}"  # db_url's own: root's only
    assert cli("db", "init", url, "--demo").code == 0
    (shared / "area").mkdir()
    site = Site(shared, url, cli, moodle_tables())
    dirroot = moodle_site(shared, script=PEEK)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;;;\n")
    purge_playbook(site, f'{{moodle_dir: "{dirroot}", php: [/bin/sh]}}')
    # what the run imports, imported while they can be read (root's Python may be
    # root's only); as root the preview fails: the script never runs as root
    site.run("--check")
    for path in [shared, *shared.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)
    code = in_a_process_of(user, lambda: site.run().code)
    assert code == 0
    seen = (dirroot / "admin" / "cli" / "seen").read_text().split("\n")
    assert seen == ["environ denied", "fd denied", "maps denied", ""]
    environ = dirroot / "admin" / "cli" / "seen.environ"
    assert not environ.exists() or "PATH=" not in environ.read_text()
    # no descriptor of postsync's (the database, the record, the lock) is inherited
    fds = (dirroot / "admin" / "cli" / "seen.fds").read_text().split()
    assert sorted(fds, key=int) == ["0", "1", "2", "3"]  # 3: ls's own listing


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def test_a_stopped_script_takes_its_children_with_it(site: Site, shared: Path) -> None:
    script = 'sleep 60 &\necho $! > "$(dirname "$0")/child"\nsleep 60\n'
    dirroot = moodle_site(shared, script=script)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;;;\n")
    purge_playbook(site, params(dirroot, ", timeout_seconds: 1", php="/bin/sh"))
    started = time.monotonic()
    result = site.run()
    assert result.code == 3, result.out
    assert "took more than 1 s and was stopped" in result.out
    child = int((dirroot / "admin" / "cli" / "child").read_text())
    try:
        deadline = time.monotonic() + 5
        while not gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(child), "the script's child outlived it"
    finally:
        if not gone(child):
            os.kill(child, 9)
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    ("signals", "code", "ignores_term"),
    [
        ([signal.SIGTERM], 143, False),
        ([signal.SIGINT], 130, False),
        # the script ignores SIGTERM (SIGKILL after the grace period), and a second
        # signal comes while postsync waits for it
        ([signal.SIGTERM, signal.SIGTERM], 143, True),
    ],
    ids=["sigterm", "sigint", "twice"],
)
def test_an_interrupted_run_stops_the_script_and_exits(
    site: Site, shared: Path, signals: list[int], code: int, ignores_term: bool
) -> None:
    """postsync stopped (systemd's stop, kill, Ctrl-C) while the script runs: the
    script and what it started are stopped as on a timeout, and postsync exits with
    the interruption's code, never waiting for the script to end on its own."""
    script = (
        ("trap '' TERM\n" if ignores_term else "")
        + 'sleep 300 &\necho $! > "$(dirname "$0")/child"\n'
        + 'echo $$ > "$(dirname "$0")/pid"\nwait\n'
    )
    dirroot = moodle_site(shared, script=script)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;;;\n")
    purge_playbook(site, params(dirroot, php="/bin/sh"))
    run = subprocess.Popen(
        [*POSTSYNC, "run", site.root / "playbook.yml"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pid_file = dirroot / "admin" / "cli" / "pid"
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text().endswith("\n")):
        assert time.monotonic() < deadline and run.poll() is None, run.communicate()
        time.sleep(0.05)
    pids = [int(pid_file.read_text()), int((dirroot / "admin" / "cli" / "child").read_text())]
    try:
        for n, signum in enumerate(signals):
            if n:
                time.sleep(1)  # within the grace period
            run.send_signal(signum)
        out, err = run.communicate(timeout=120)  # the script alone would take 300 s
        assert run.returncode == code, out + err
        assert "(interrupted)" in out
        assert [pid for pid in pids if not gone(pid)] == [], "the script outlived postsync"
    finally:
        run.kill()
        for pid in pids:
            if not gone(pid):
                os.kill(pid, 9)


def alive_with(marker: str) -> list[int]:
    """The processes, not zombies, whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in argv and not gone(int(entry.name)):
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize(
    ("ending", "timeout", "code"),
    [("sleep 60", 1, 3), ("exit 0", 30, 0)],
    ids=["stopped", "ended"],
)
def test_a_process_the_script_detached_goes_with_it(
    site: Site, shared: Path, ending: str, timeout: int, code: int
) -> None:
    """A process in a session of its own (`setsid -f`: not in the script's group),
    whose parent is gone, is stopped too, whether the script outlasts the timeout or
    ends at once."""
    if shutil.which("setsid") is None:
        pytest.skip("no setsid command")
    marker = f"302.{os.getpid()}{time.monotonic_ns() % 10**6}"  # a number for sleep
    # the script goes on once its child is detached (in its own session: past setsid)
    script = (
        'detached="$(dirname "$0")/detached"\n'
        f'setsid -f sh -c \'echo $$ > "$0"; exec sleep {marker}\' "$detached"'
        " </dev/null >/dev/null 2>&1\n"
        'while [ ! -s "$detached" ]; do sleep 0.05; done\n'
        f"{ending}\n"
    )
    dirroot = moodle_site(shared, script=script)
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;student;;;;;;\n")
    purge_playbook(site, params(dirroot, f", timeout_seconds: {timeout}", php="/bin/sh"))
    try:
        result = site.run()
        assert result.code == code, result.out
        assert alive_with(marker) == [], "the detached process outlived the step"
    finally:
        for pid in alive_with(marker):
            os.kill(pid, 9)


def test_no_part_of_a_secret_is_quoted_where_the_quote_is_cut(site: Site, shared: Path) -> None:
    """The failure quotes the last 400 characters of the output: a secret of
    `environment` printed across that cut is masked whole first, no end of it shown."""
    secret = "Zq7-pw-9931-xKvB-44"
    script = (
        "import os, sys\n"
        "sys.stdout.write('a' * 20 + os.environ['DB_PASSWORD'] + 'b' * 390)\n"
        "sys.exit(1)\n"
    )
    dirroot = moodle_site(shared, script=script)
    purge_playbook(site, params(dirroot, f', environment: {{DB_PASSWORD: "{secret}"}}'))
    fragments = {secret[i : i + 6] for i in range(len(secret) - 5)}
    for args in ((), ("--output", "json")):
        site.write("enrols.csv", HEADER + f"add;MATH101;U000{len(args) + 1};student;;;;;;\n")
        result = site.run(*args)
        assert result.code == 3, result.out
        assert "exited with status 1: " in result.out
        assert "b" * 300 in result.out  # the end of the output is quoted
        shown = [part for part in fragments if part in result.out + result.err]
        assert shown == [], shown
    for record in (site.area / ".postsync" / "runs").rglob("*"):
        if record.is_file():
            text = record.read_text(errors="replace")
            assert [part for part in fragments if part in text] == [], record
