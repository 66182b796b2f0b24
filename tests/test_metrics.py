"""`--metrics-file` through the real CLI: only a regular file is read or replaced (a
FIFO or a symlink there is refused: the run goes on, says so and exits 3), playbooks of several
areas share one file without losing a series (real processes), and any playbook name
reads back as the same series (prometheus_client's parser, as Prometheus reads it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CLI, ROOT

prometheus = pytest.importorskip("prometheus_client.parser")


def quoted(name: str) -> str:
    """`name` as a YAML double-quoted scalar, every unusual character escaped."""
    out = []
    for char in name:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        else:
            out.append(f"\\U{code:08x}" if code > 0xFFFF else f"\\u{code:04x}")
    return '"' + "".join(out) + '"'


def playbook(directory: Path, name: str, area: str = "area") -> Path:
    (directory / area).mkdir(exist_ok=True)
    path = directory / f"{area}.yml"
    path.write_text(
        f"name: {quoted(name)}\narea: {area}\npost_treatments:\n"
        "  - name: purge\n    purge_old_files: {paths: [archives], older_than_days: 30}\n"
    )
    return path


def series(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    # bytes decoded as they are: read_text would turn a \r in a label value into \n
    families = prometheus.text_string_to_metric_families(path.read_bytes().decode("utf-8"))
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def exit_codes(path: Path) -> dict[str, float]:
    return {
        dict(labels)["playbook"]: value
        for (name, labels), value in series(path).items()
        if name == "postsync_last_exit_code"
    }


def postsync(*args: object, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """postsync in a process of its own, killed after `timeout` (a hang fails the test)."""
    code = "import sys; from runner.cli.main import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "NO_COLOR": "1"},
    )


def test_only_a_regular_file_is_written(tmp_path: Path) -> None:
    book = playbook(tmp_path, "Plain")
    fifo = tmp_path / "fifo.prom"
    os.mkfifo(fifo)
    result = postsync("run", book, "--metrics-file", fifo, timeout=30)
    assert result.returncode == 3, result.stderr  # the run went on, its metrics are not
    assert f"metrics file {fifo}: not a regular file" in result.stderr
    assert f"FAILED   metrics file {fifo}: not a regular file" in result.stdout
    assert "OK       purge" in result.stdout
    assert fifo.is_fifo()
    # a symlink is not followed (nor replaced); a directory is refused too
    target = tmp_path / "elsewhere.txt"
    target.write_text("not yours\n")
    link = tmp_path / "link.prom"
    link.symlink_to(target)
    result = postsync("run", book, "--metrics-file", link)
    assert result.returncode == 3 and "metrics file" in result.stderr and "symlink" in result.stderr
    assert link.is_symlink() and target.read_text() == "not yours\n"
    directory = tmp_path / "dir.prom"
    directory.mkdir()
    result = postsync("run", book, "--metrics-file", directory)
    assert result.returncode == 3 and "not a regular file" in result.stderr
    # the lock beside it is checked the same way
    metrics = tmp_path / "locked.prom"
    os.mkfifo(tmp_path / "locked.prom.lock")
    result = postsync("run", book, "--metrics-file", metrics, timeout=30)
    assert result.returncode == 3 and "locked.prom.lock: not a regular file" in result.stderr
    assert not metrics.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


ODD_NAMES = [
    "line\u2028separator",
    "para\u2029graph",
    "next\x85line",
    'a "quoted" name',
    "back\\slash\\n",
    "new\nline",
    "carriage\rreturn",
    "tab\tand\x01control\x00nul",
    "ünïcödé ☃ 𝄞",
    "}, {playbook=",
]


def test_any_playbook_name_reads_back_as_its_series(tmp_path: Path, cli: CLI) -> None:
    metrics = tmp_path / "postsync.prom"
    for round_ in range(2):  # the second round reads the first's file back
        for i, name in enumerate(ODD_NAMES):
            assert (
                cli("run", playbook(tmp_path, name, f"area{i}"), "--metrics-file", metrics).code
                == 0
            )
            assert set(exit_codes(metrics)) == set(ODD_NAMES[: i + 1] if round_ == 0 else ODD_NAMES)
    got = series(metrics)
    # each playbook's series once (4 of the run, 2 of its lines, 5 of its steps by
    # status): no duplicate of a name read back wrong
    assert len(got) == len(ODD_NAMES) * 11, sorted(got)


WRITER = """
import sys
from pathlib import Path
from prometheus_client.parser import text_string_to_metric_families
from runner.cli.main import main

book, metrics, name = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
missing = 0
for _ in range(25):
    code = main(["run", book, "--metrics-file", str(metrics), "-q"])
    assert code == 0, code
    families = text_string_to_metric_families(metrics.read_bytes().decode("utf-8"))
    mine = [s for f in families for s in f.samples if s.labels.get("playbook") == name]
    missing += not mine
print(missing)
"""


def test_two_playbooks_share_one_file_without_losing_a_series(tmp_path: Path) -> None:
    metrics = tmp_path / "textfile" / "postsync.prom"
    metrics.parent.mkdir()
    names = ("Nightly A", "Nightly B")
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, playbook(tmp_path, name, f"area{i}"), metrics, name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "NO_COLOR": "1"},
        )
        for i, name in enumerate(names)
    ]
    outputs = [writer.communicate(timeout=300) for writer in writers]
    for writer, (out, err) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, err
        assert "metrics file" not in err, err  # no temporary removed under another writer
        assert out.splitlines()[-1] == "0", out  # its series there after each of its runs
    assert set(exit_codes(metrics)) == set(names)
    assert sorted(p.name for p in metrics.parent.iterdir()) == [
        "postsync.prom",
        "postsync.prom.lock",
    ]


def test_a_file_of_something_else_is_never_replaced(tmp_path: Path, cli: CLI) -> None:
    """A mistyped path naming a file of other content (a key, the playbook itself) is
    left byte for byte as it was, its mode too; the run says so and exits 3."""
    book = playbook(tmp_path, "Plain")
    precious = tmp_path / "precious.txt"
    precious.write_bytes(b"api-key: do not lose me\n")
    precious.chmod(0o600)
    copy = tmp_path / "copy.yml"
    copy.write_bytes(book.read_bytes())
    latin1 = tmp_path / "latin1.prom"
    latin1.write_bytes(b"caf\xe9\n")
    foreign = tmp_path / "foreign.prom"  # Prometheus text, of another exporter's
    foreign.write_bytes(b"# TYPE node_load1 gauge\nnode_load1 0.5\n")
    for path in (precious, copy, latin1, foreign):
        before = path.read_bytes(), path.stat().st_mode
        result = cli("run", book, "--metrics-file", path)
        assert result.code == 3, result.out
        message = f"metrics file {path}: holds something other than postsync's metrics"
        assert message in result.err
        assert (path.read_bytes(), path.stat().st_mode) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_replaced_metrics_file_keeps_its_mode(tmp_path: Path, cli: CLI) -> None:
    metrics = tmp_path / "postsync.prom"
    assert cli("run", playbook(tmp_path, "First"), "--metrics-file", metrics).code == 0
    assert metrics.stat().st_mode & 0o777 == 0o644  # a new file: the collector reads it
    metrics.chmod(0o640)
    result = cli("run", playbook(tmp_path, "Second", "area2"), "--metrics-file", metrics)
    assert result.code == 0 and "metrics file" not in result.err, result.err
    assert metrics.stat().st_mode & 0o777 == 0o640
    assert set(exit_codes(metrics)) == {"First", "Second"}
    # an empty file (made for postsync to fill) is taken
    empty = tmp_path / "empty.prom"
    empty.touch()
    assert cli("run", playbook(tmp_path, "Third", "area3"), "--metrics-file", empty).code == 0
    assert set(exit_codes(empty)) == {"Third"}


def test_a_metrics_file_that_cannot_be_written_is_told_before_the_run_and_notified(
    tmp_path: Path,
) -> None:
    """A directory the run may not write (here: a file where it should be; under systemd a
    read-only mount): the run goes on, tells of it first (text, JSON, notify's webhook,
    `run.failed`) and exits 3; a preview writes no metrics and says nothing of them."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict[str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (tmp_path / "area").mkdir()
        book = tmp_path / "notified.yml"
        book.write_text(
            "name: Notified\narea: area\npost_treatments:\n"
            "  - name: purge\n    purge_old_files: {paths: [archives], older_than_days: 30}\n"
            "  - name: tell ops\n    when: run.failed\n    notify:\n      webhook:\n"
            f"        url: http://127.0.0.1:{server.server_address[1]}/hook\n"
        )
        (tmp_path / "not-a-dir").write_text("a file\n")
        metrics = tmp_path / "not-a-dir" / "postsync.prom"
        preview = postsync("run", book, "--check", "--metrics-file", metrics)
        assert preview.returncode == 0 and "metrics" not in preview.stdout + preview.stderr
        assert received == []
        result = postsync("run", book, "--metrics-file", metrics)
        assert result.returncode == 3, result.stdout + result.stderr
        why = f"metrics file {metrics}: {metrics}.lock: Not a directory"
        first = result.stdout.splitlines()[0]
        assert first == f"FAILED   {why}  (the run goes on)", first
        assert "CHANGED  tell ops  (1 notification)" in result.stdout
        (body,) = received
        assert body["failed"] is True
        assert body["problems"] == [why]
        # the default subject's end (a long path cut in its middle)
        headline = body["headline"]
        assert headline.startswith("1 problem (metrics file /"), headline
        assert headline.endswith("postsync.prom.lock: Not a directory)"), headline
        document = json.loads(
            postsync("run", book, "--output", "json", "--metrics-file", metrics).stdout
        )
        assert document["exit_code"] == 3
        assert document["problems"] == [why]
    finally:
        server.shutdown()
        server.server_close()
