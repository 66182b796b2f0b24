"""Property-based tests (hypothesis, bounded for CI): random control files and
playbooks. The preview lists exactly the run's items and changes nothing; the same
record post-processed again changes nothing; re-applying a file (one line per
enrolment) changes no line; the retry file is the header and the failed lines, byte
for byte, and failing them again gives the same lines."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from runner.cli.main import main

COURSES = ["MATH101", "PHYS101", "NOPE"]
USERS = ["U0001", "U0002", "U0003", "U0004", "U0300", "U9999"]
ROLES = ["student", "teacher", "wizard"]
CMDS = ["add", "add", "add", "del", "shift", "enable", "disable", "bogus"]
GCMDS = ["", "", "gadd", "gaddcreate", "greplace", "gdel"]
GROUPS = ["G1", "G2", "Équipe", "New"]
COMMENTS = ["# comment", "// comment", "", "(note)"]

_TEMPLATE: Path | None = None


def template_db() -> Path:
    global _TEMPLATE
    if _TEMPLATE is None:
        path = Path(tempfile.mkdtemp(prefix="postsync-prop-")) / "moodle.db"
        assert cli("db", "init", f"sqlite:///{path}", "--demo")[0] == 0
        _TEMPLATE = path
    return _TEMPLATE


def cli(*args: object) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main([str(a) for a in args])
    return code, out.getvalue()


def items(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("    ")]


def quote(value: str, quoted: bool) -> str:
    return f'"{value}"' if quoted else value


@st.composite
def control_files(draw: Any) -> dict[str, Any]:
    separator = draw(st.sampled_from([";", ","]))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    encoding = draw(st.sampled_from(["utf-8", "iso-8859-1"]))
    quoted = draw(st.booleans())
    lines = [draw(st.sampled_from(COMMENTS)) for _ in range(draw(st.integers(0, 2)))]
    header = ["cmd", "cid", "uid", "rolename", "gcmd", "g1"]
    lines.append(separator.join(quote(h, quoted and h == "cid") for h in header))
    # each (course, user) once: lines about the same enrolment would undo each other
    pairs = draw(
        st.lists(
            st.tuples(st.sampled_from(COURSES), st.sampled_from(USERS)), unique=True, max_size=18
        )
    )
    for course, user in pairs:
        values = [
            draw(st.sampled_from(CMDS)),
            course,
            user,
            draw(st.sampled_from(ROLES)),
            draw(st.sampled_from(GCMDS)),
            draw(st.sampled_from(GROUPS)),
        ]
        lines.append(separator.join(quote(v, quoted) for v in values))
        if draw(st.integers(0, 9)) == 0:
            lines.append(draw(st.sampled_from(COMMENTS)))
    body = eol.join(lines) + (eol if draw(st.booleans()) else "")
    return {
        "bytes": body.encode(encoding),
        "encoding": encoding,
        "separator": separator,
    }


@st.composite
def playbooks(draw: Any) -> list[str]:
    treatments = [
        "  - clean_empty_groups: {groupings: true}\n",
        "  - save_report: {dest: 'reports/{{ file.name }}.txt'}\n",
        "  - archive_control_files: {dest: 'archives/{{ file.name }}', compress: "
        + draw(st.sampled_from(["none", "gzip"]))
        + "}\n",
        "  - write_retry_file: {dest: 'retry/{{ file.stem }}_tryback{{ file.suffix }}'}\n",
        "  - delete_control_files: {}\n",
    ]
    chosen = draw(st.lists(st.sampled_from(treatments), unique=True))
    return [t for t in treatments if t in chosen]  # in the playbook's usual order


def write_playbook(root: Path, control: dict[str, Any], post: list[str], name: str) -> Path:
    sep = control["separator"]
    path = root / "playbook.yml"
    path.write_text(
        "name: Property\narea: area\ndatabase: sqlite:///moodle.db\n"
        f"sync:\n  - command: enrolments\n    file: {name}\n"
        f"    encoding: {control['encoding']}\n    separator: '{sep}'\n"
        + ("post_treatments:\n" + "".join(post) if post else "")
    )
    return path


def state(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and ".postsync" not in path.parts:
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(control=control_files(), post=playbooks())
def test_preview_is_the_run_and_nothing_changes_twice(
    control: dict[str, Any], post: list[str]
) -> None:
    root = Path(tempfile.mkdtemp(prefix="postsync-prop-"))
    try:
        shutil.copy(template_db(), root / "moodle.db")
        (root / "area").mkdir()
        (root / "area" / "enrols.csv").write_bytes(control["bytes"])
        playbook = write_playbook(root, control, post, "enrols.csv")
        before = state(root)
        code_preview, preview = cli("run", playbook, "--check")
        event(f"exit {code_preview}")
        assert state(root) == before  # files and the database file
        code_real, real = cli("run", playbook)
        assert code_preview == code_real and code_real in (0, 2), real
        assert items(preview) == items(real)
        runs = root / "area" / ".postsync" / "runs"
        record = max(runs.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
        entry = json.loads(record.read_text())["control_files"][0]
        # the same record post-processed again: everything is already done
        after = state(root)
        code_post, again = cli("post", record)
        assert code_post == code_real and items(again) == [], again
        assert state(root) == after
        # re-applying the same file changes no line
        (root / "area" / "enrols.csv").write_bytes(control["bytes"])
        sync_only = write_playbook(root, control, [], "enrols.csv")
        _, resync = cli("run", sync_only)
        total = entry["lines"]["total"]
        assert f"{total} line{'' if total == 1 else 's'}: 0 changed" in resync, resync
        # the retry file: header and failed lines, byte for byte; they fail again
        retry = root / "area" / "retry" / "enrols_tryback.csv"
        if any("write_retry_file" in t for t in post) and entry["lines"]["failed"]:
            event("retry file round trip")
            failed = [f["number"] for f in entry["failed_lines"]]
            raw = control["bytes"].splitlines(keepends=True)
            header = next(
                line
                for line in raw
                if line.strip()
                and not line.decode(control["encoding"]).startswith(("#", "//", "("))
            )
            assert retry.read_bytes() == header + b"".join(raw[n - 1] for n in failed)
            retry_run = write_playbook(root, control, [], "retry/enrols_tryback.csv")
            _, out = cli("run", retry_run)
            lines = f"{len(failed)} line{'' if len(failed) == 1 else 's'}"
            assert f"({lines}: 0 changed, 0 unchanged, {len(failed)} failed)" in out
        else:
            assert not retry.exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)
