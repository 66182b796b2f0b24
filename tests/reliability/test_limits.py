"""Limits and hangs: a database that never answers, another writer's lock, secrets in
every form, bad command-line numbers. Each ends in a clear exit code, never a hang
holding the area's lock, never a traceback, never a password printed."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from tests.conftest import CLI, POSTSYNC
from tests.pgserver import PostgresServer
from tests.reliability.workspace import postsync
from tests.sync.test_secrets import everything_written

HEADER = "cmd;cid;uid;rolename\n"
LINES = "".join(f"add;MATH101;U{i:04d};student\n" for i in range(1, 21))


def playbook(root: Path, database: str, extra: str = "", post: str = "") -> Path:
    (root / "area").mkdir(parents=True, exist_ok=True)
    (root / "area" / "enrols.csv").write_text(HEADER + LINES)
    path = root / "playbook.yml"
    path.write_text(
        f"name: Limits\narea: area\ndatabase: '{database}'\n{extra}"
        "sync:\n  - command: enrolments\n    file: enrols.csv\n" + post
    )
    return path


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "mysql+pymysql"])
def test_a_server_that_never_answers_times_out(
    tmp_path: Path, silent_server: int, scheme: str
) -> None:
    pytest.importorskip("psycopg" if "psycopg" in scheme else "pymysql")
    database = f"{scheme}://moodle@127.0.0.1:{silent_server}/moodle"
    playbook(tmp_path, database, "database_timeouts: {connect: 1}\n")
    started = time.monotonic()
    result = postsync(tmp_path, "run", "playbook.yml", timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr
    assert time.monotonic() - started < 30
    assert "database_timeouts.connect" in result.stdout
    assert "Traceback" not in result.stderr
    assert (tmp_path / "area" / "enrols.csv").exists()
    # the lock went with the run: the next one is not refused with exit 6
    again = postsync(tmp_path, "run", "playbook.yml", timeout=60)
    assert again.returncode == 3


@pytest.mark.parametrize(
    ("database", "message"),
    [
        ("postgresql+psycopg://u:pw@localhost:notaport/db", "port in the database URL"),
        ("postgresql+psycopg://u@localhost:70000/db", "not a TCP port"),
    ],
)
def test_a_bad_port_is_a_located_playbook_error(
    tmp_path: Path, database: str, message: str
) -> None:
    playbook(tmp_path, database)
    result = postsync(tmp_path, "run", "playbook.yml")
    assert result.returncode == 4, result.stderr
    assert "playbook.yml:3:11: database:" in result.stderr and message in result.stderr
    assert "internal error" not in result.stderr


def _sqlite_site(root: Path) -> Path:
    init = postsync(root, "db", "init", "sqlite:///moodle.db", "--demo")
    assert init.returncode == 0, init.stderr
    return root / "moodle.db"


def _hold_write_lock(db: Path, seconds: float) -> subprocess.Popen[str]:
    """Another writer: a process holding SQLite's write lock for `seconds`."""
    script = (
        "import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "c.execute('UPDATE mdl_course SET timemodified = timemodified')\n"
        "print('locked', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
        "c.execute('COMMIT')\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(db), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    return holder


def test_another_sqlite_writer_is_waited_for(tmp_path: Path) -> None:
    db = _sqlite_site(tmp_path)
    playbook(tmp_path, "sqlite:///moodle.db")
    holder = _hold_write_lock(db, 2)
    try:
        result = postsync(tmp_path, "run", "playbook.yml")
    finally:
        holder.wait()
    assert result.returncode == 0, result.stdout + result.stderr
    with sqlite3.connect(db) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM mdl_user_enrolments").fetchone()
    assert count >= 20


def test_a_lock_held_too_long_fails_the_file_cleanly(tmp_path: Path) -> None:
    db = _sqlite_site(tmp_path)
    playbook(tmp_path, "sqlite:///moodle.db", "database_timeouts: {lock: 0.5}\n")
    with sqlite3.connect(db) as conn:
        (before,) = conn.execute("SELECT COUNT(*) FROM mdl_user_enrolments").fetchone()
    holder = _hold_write_lock(db, 8)
    try:
        started = time.monotonic()
        result = postsync(tmp_path, "run", "playbook.yml")
        elapsed = time.monotonic() - started
    finally:
        holder.wait()
    assert result.returncode == 3, result.stdout + result.stderr
    assert elapsed < 8
    assert "database is locked" in result.stdout
    assert "database_timeouts.lock" in result.stdout
    assert (tmp_path / "area" / "enrols.csv").read_text() == HEADER + LINES
    with sqlite3.connect(db) as conn:
        (after,) = conn.execute("SELECT COUNT(*) FROM mdl_user_enrolments").fetchone()
    assert after == before


def test_a_query_string_password_is_never_printed_by_db_init(tmp_path: Path) -> None:
    secret = "qs-secret-value"
    result = postsync(tmp_path, "db", "init", f"sqlite:///moodle.db?password={secret}")
    assert result.returncode == 0, result.stderr
    assert "password=***" in result.stdout
    assert secret not in result.stdout + result.stderr


#: a password with characters JSON escapes (and a non-ASCII one)
TRICKY = 'pa"ss\\wörd-9'


def test_a_password_is_masked_in_every_form(
    postgresql_server: PostgresServer,
    tmp_path: Path,
    cli: CLI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Raw, URL-encoded and JSON-escaped: JSON output, JSONL, text, record, reports."""
    from runner.core.errors import StepError
    from runner.treatments.report import SaveReport

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    base = postgresql_server.create_database("tricky")
    user = postgresql_server.user
    url = base.replace(f"{user}@", f"{user}:{quote(TRICKY, safe='')}@")
    assert cli("db", "init", url, "--demo").code == 0
    book = playbook(tmp_path, url, post="post_treatments:\n  - save_report: {}\n")

    def leaky(*_args: object) -> None:
        raise StepError(f"the store said: {TRICKY} / {quote(TRICKY)}")

    monkeypatch.setattr(SaveReport, "plan", leaky)
    outputs = [cli("run", book, "--output", "json")]
    (tmp_path / "area" / "enrols.csv").write_text(HEADER + LINES + "add;MATH101;U0099;student\n")
    outputs += [cli("run", book, "--output", "jsonl"), cli("run", book)]
    assert [o.code for o in outputs] == [3, 3, 3]
    document = json.loads(outputs[0].out)
    assert "the store said: *** / ***" in json.dumps(document)
    for line in outputs[1].out.splitlines():
        json.loads(line)
    forms = {
        TRICKY,
        quote(TRICKY, safe=""),
        quote_plus(TRICKY),
        json.dumps(TRICKY)[1:-1],
        json.dumps(TRICKY, ensure_ascii=False)[1:-1],
    }
    written = everything_written(tmp_path / "area", tmp_path / "state")
    assert any(name.endswith(".json") and "runs" in name for name in written)
    for form in forms:
        for output in outputs:
            assert form not in output.out and form not in output.err
        for name, content in written.items():
            assert form.encode() not in content, name


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "1e400", "soon"])
def test_lock_wait_must_be_a_finite_number_of_seconds(tmp_path: Path, value: str) -> None:
    playbook(tmp_path, "sqlite:///moodle.db")
    result = postsync(tmp_path, "run", "playbook.yml", f"--lock-wait={value}")
    assert result.returncode == 5, result.stderr
    assert "--lock-wait" in result.stderr
    assert not (tmp_path / "area" / ".postsync").exists()


def _limited() -> None:
    """The child's address space capped at 1.5 GiB: a blow-up fails instead of
    swapping the machine."""
    import resource

    cap = 1536 * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def limited(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`postsync ARGS` with its memory capped (`_limited`) and a deadline."""
    return subprocess.run(
        [*POSTSYNC, *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limited,
        check=False,
    )


BOMBS = {
    "recursive macro": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "replace": "{{ ('x' * 1000) | replace('', 'y' * 100000) }}",
    "indent": "{{ ('x\\n' * 500000) | indent(1000) }}",
    "join": "{{ range(100000) | join('z' * 100000) }}",
    "nested loops": "{% for i in range(100000) %}{% for j in range(100000) %}"
    "{% endfor %}{% endfor %}",
    "doubling": "{% set ns = namespace(x='y' * 900000) %}{% for i in range(50) %}"
    "{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x | length }}",
    "format width": "{{ '{:>999999999}'.format(1) }}",
    "when": None,
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_a_template_cannot_exhaust_memory_or_time(tmp_path: Path, name: str) -> None:
    (tmp_path / "area").mkdir()
    bomb = BOMBS[name]
    if bomb is None:  # a `when:` expression, evaluated per step
        when = "(range(100000) | list | join('x' * 100000)) | length > 0"
        body = "post_treatments:\n  - purge_old_files: {paths: [.], older_than_days: 1}\n"
        body += f'    when: "{when}"\n'
    else:
        body = f"vars:\n  x: {json.dumps(bomb)}\n"
    (tmp_path / "playbook.yml").write_text(f"name: Bombs\narea: area\n{body}")
    started = time.monotonic()
    result = limited(tmp_path, "run", "playbook.yml")
    assert result.returncode == 4, result.stderr
    assert "playbook.yml:" in result.stderr and "refused by the sandbox" in result.stderr
    assert "internal error" not in result.stderr
    assert time.monotonic() - started < 30
    assert not (tmp_path / "area" / ".postsync").exists()


@pytest.mark.parametrize("args", [["validate", "/dev/zero"], ["run", "p.yml", "-e", "@/dev/zero"]])
def test_an_endless_file_is_refused_without_reading_it_all(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "area").mkdir()
    (tmp_path / "p.yml").write_text("name: x\narea: area\n")
    result = limited(tmp_path, *args)
    assert result.returncode == 4, result.stderr
    assert "/dev/zero:1:1: more than 2097152 bytes" in result.stderr
