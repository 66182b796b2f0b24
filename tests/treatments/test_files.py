"""save_report, archive_control_files, write_retry_file and delete_control_files through
`postsync run` and `postsync post`: each does its part, previews exactly, changes nothing
the second time, and never loses a control file."""

from __future__ import annotations

import gzip
import json
import os
import re
import time
from pathlib import Path

import pytest

from tests.conftest import make_file, snapshot
from tests.sync.conftest import Site

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

# ISO-8859-1, CRLF line endings, quoted fields, a comment: the retry file keeps it all
HEADER = b'cmd;cid;uid;rolename;gcmd;"g1"\r\n'
LINES = [
    b"add;MATH101;U0001;student;;\r\n",
    b'add;MATH101;U9999;"student";gaddcreate;"Groupe \xe9t\xe9"\r\n',  # no such user
    b"add;MATH101;U0002;student;;\r\n",
    b'add;"CHEM201";U0003;wizard;;\r\n',  # no such role
    b"add;PHYS101;U0004;student;;\r\n",
]
CONTROL = b"# export du SI\r\n" + HEADER + b"".join(LINES)

STEP = "  - command: enrolments\n    file: enrols*.csv\n    encoding: iso-8859-1\n"
NIGHTLY = """\
post_treatments:
  - clean_empty_groups: {}
  - save_report: {}
  - archive_control_files: {}
  - write_retry_file: {}
  - delete_control_files: {}
"""


def playbook(site: Site, post: str = NIGHTLY, step: str = STEP) -> Path:
    path = site.playbook(step)
    path.write_text(path.read_text() + post)
    return path


def items(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("    ")]


def same_minute() -> None:
    """Default names carry the minute: keep a preview and its run in the same one."""
    if time.localtime().tm_sec > 50:
        time.sleep(61 - time.localtime().tm_sec)


def only(directory: Path, pattern: str) -> Path:
    (found,) = directory.glob(pattern)
    return found


def test_nightly_end_to_end(site: Site) -> None:
    control = site.write("enrols.csv", CONTROL)
    os.utime(control, (1_700_000_000, 1_700_000_000))
    other = site.write("notes.txt", "not a control file\n")
    playbook(site)
    same_minute()
    before = snapshot(site.area, own_state=False)
    preview = site.run("--check")
    assert snapshot(site.area, own_state=False) == before
    real = site.run()
    assert preview.code == real.code == 2, real.out
    assert items(preview.out) == items(real.out)
    # the courses' empty groups were made in Moodle, not by a feed: kept
    assert "OK       clean_empty_groups  (no empty group to delete in the 2 processed courses;" in (
        real.out
    )
    stamp = time.strftime("%Y%m%d-%H%M")
    assert items(real.out) == [
        "    sync enrols.csv  (5 lines: 3 changed, 0 unchanged, 2 failed)",
        f"    write reports/{stamp}_report_enrols.txt  (report of enrols.csv, text)",
        f"    archive enrols.csv -> archives/{stamp}_enrols.csv  ({len(CONTROL)} bytes)",
        f"    write enrols_tryback_{stamp}.csv  (2 failed lines of enrols.csv)",
        "    delete enrols.csv  (archived)",
    ]
    archive = site.area / "archives" / f"{stamp}_enrols.csv"
    assert archive.read_bytes() == CONTROL
    # dated when stored (its age for purge_old_files); the source's time is in the record
    assert archive.stat().st_mtime > time.time() - 600
    retry = site.area / f"enrols_tryback_{stamp}.csv"
    assert retry.read_bytes() == HEADER + LINES[1] + LINES[3]
    report = (site.area / "reports" / f"{stamp}_report_enrols.txt").read_text()
    assert "line 4: add student U9999 in MATH101: failed: no such user (idnumber U9999)" in report
    assert not control.exists()
    assert other.read_text() == "not a control file\n"
    again = site.run()
    assert again.code == 0
    assert "changed=0" in again.out
    # every treatment again for the same run: all of it is already done
    record = max((site.area / ".postsync" / "runs").glob("*.json"), key=os.path.getmtime)
    entry = json.loads(record.read_text())["control_files"][0]
    assert entry["mtime"] == "2023-11-14T22:13:20+00:00"
    first = json.loads(record.read_text())
    assert first["control_files"][0]["lines"]["failed"] == 2
    rerun = site.cli("post", site.area / ".postsync" / "runs" / f"{first['run_id']}.json")
    assert rerun.code == 2
    assert items(rerun.out) == []
    assert "RECAP ok=5 changed=0 skipped=0 failed=0" in rerun.out


def test_per_file_when(site: Site) -> None:
    site.write("enrols.csv", HEADER + LINES[0])
    members = site.write("groupmembers.csv", "courseid;groupid;userid\nMATH101;MATH101-G1;U0001\n")
    steps = STEP + "  - command: group_members\n    file: groupmembers.csv\n"
    post = (
        "post_treatments:\n  - delete_control_files: {}\n    when: file.command == 'enrolments'\n"
    )
    playbook(site, post, steps)
    result = site.run()
    assert result.code == 0, result.out
    assert items(result.out)[-1] == "    delete enrols.csv"
    assert members.exists()


def test_retry_file_round_trip(site: Site) -> None:
    site.write("enrols.csv", CONTROL)
    playbook(site, "post_treatments:\n  - write_retry_file: {}\n")
    assert site.run().code == 2
    retry = only(site.area, "enrols_tryback_*.csv")
    fixed = retry.read_bytes().replace(b"U9999", b"U0009").replace(b"wizard", b"teacher")
    retry.write_bytes(fixed)
    named = f"  - command: enrolments\n    file: {retry.name}\n    encoding: iso-8859-1\n"
    site.playbook(named)
    result = site.run()
    assert result.code == 0, result.out
    assert f"sync {retry.name}  (2 lines: 2 changed, 0 unchanged, 0 failed)" in result.out
    assert site.enrolled("MATH101", "U0009") == [("student", 0)]
    assert site.enrolled("CHEM201", "U0003") == [("teacher", 0)]
    assert site.groups_of("MATH101", "U0009") == ["Groupe été"]


def test_no_retry_file_without_failed_lines(site: Site) -> None:
    site.write("enrols.csv", HEADER + LINES[0])
    playbook(site, "post_treatments:\n  - write_retry_file: {}\n")
    result = site.run()
    assert result.code == 0
    assert (
        "OK       write_retry_file  (nothing to write, 1 file without failed lines)" in result.out
    )
    assert not list(site.area.glob("*_tryback_*"))


def test_archive_gzip_and_conflicts(site: Site) -> None:
    site.write("enrols.csv", CONTROL)
    post = (
        "post_treatments:\n  - archive_control_files:\n"
        "      dest: archives/{{ file.name }}\n      compress: gzip\n"
    )
    playbook(site, post)
    make_file(site.area / "archives" / "enrols.csv.gz", content="someone else's file\n")
    result = site.run()
    assert "archive enrols.csv -> archives/enrols.1.csv.gz  (" in result.out
    assert gzip.decompress((site.area / "archives" / "enrols.1.csv.gz").read_bytes()) == CONTROL
    assert (site.area / "archives" / "enrols.csv.gz").read_text() == "someone else's file\n"
    again = site.run()  # the same content is already archived: nothing to do
    assert "OK       archive_control_files  (nothing to archive, 1 file already archived)" in (
        again.out
    )
    site.write("enrols.csv", CONTROL + LINES[0])
    playbook(site, post.replace("gzip\n", "gzip\n      on_conflict: fail\n"))
    failed = site.run()
    assert failed.code == 3
    assert "archives/enrols.csv.gz already exists with a different content" in failed.out
    playbook(site, post.replace("gzip\n", "gzip\n      on_conflict: overwrite\n"))
    replaced = site.run()
    assert "archive enrols.csv -> archives/enrols.csv.gz  (" in replaced.out
    assert "replaces a different file" in replaced.out
    assert gzip.decompress((site.area / "archives" / "enrols.csv.gz").read_bytes()) == (
        CONTROL + LINES[0]
    )


def test_delete_waits_for_a_verified_archive(site: Site) -> None:
    control = site.write("enrols.csv", CONTROL)
    post = (
        "post_treatments:\n"
        "  - archive_control_files: {dest: archives/enrols.csv, on_conflict: fail}\n"
        "    ignore_errors: true\n"
        "  - delete_control_files: {}\n"
    )
    playbook(site, post)
    make_file(site.area / "archives" / "enrols.csv", content="a different file\n")
    result = site.run()
    assert result.code == 3
    assert "FAILED   delete_control_files" in result.out
    assert "enrols.csv kept: no verified archive of it" in result.out
    assert control.read_bytes() == CONTROL
    # with the obstacle gone, `postsync post` finishes the run's work
    (site.area / "archives" / "enrols.csv").unlink()
    record = max((site.area / ".postsync" / "runs").glob("*.json"), key=os.path.getmtime)
    post_run = site.cli("post", record)
    assert post_run.code == 2, post_run.out  # the record's failed lines
    assert "archive enrols.csv -> archives/enrols.csv" in post_run.out
    assert "delete enrols.csv  (archived)" in post_run.out
    assert (site.area / "archives" / "enrols.csv").read_bytes() == CONTROL
    assert not control.exists()


def test_delete_keeps_changed_and_unprocessed_files(site: Site) -> None:
    control = site.write("enrols.csv", CONTROL)
    site.write("enrols_later.txt", "dropped later\n")
    playbook(site, "post_treatments:\n  - save_report: {}\n")
    assert site.run().code == 2
    record = max((site.area / ".postsync" / "runs").glob("*.json"), key=os.path.getmtime)
    control.write_bytes(CONTROL + LINES[0])  # a new feed under the same name
    playbook(site, "post_treatments:\n  - delete_control_files: {}\n")
    result = site.cli("post", record)
    assert "OK       delete_control_files  (nothing to delete, kept enrols.csv (changed since" in (
        result.out
    )
    assert control.exists()
    control.write_bytes(CONTROL)
    result = site.cli("post", record, "--diff")
    assert "    delete enrols.csv" in result.out
    assert "--- enrols.csv\n+++ /dev/null\n@@ deleted: " in result.out
    assert not control.exists()
    assert (site.area / "enrols_later.txt").exists()
    again = site.cli("post", record)
    assert "OK       delete_control_files  (nothing to delete, 1 file already gone)" in again.out


def test_rejected_file_is_reported_archived_and_kept(site: Site) -> None:
    control = site.write(
        "enrols.csv", "cmd;cid;uid;rolename;colour\nadd;MATH101;U0001;student;red\n"
    )
    step = STEP + "    ignore_errors: true\n"
    playbook(site, NIGHTLY, step)
    result = site.run()
    assert result.code == 0, result.out
    assert "unknown column 'colour'" in result.out
    assert "kept enrols.csv (rejected by the sync)" in result.out
    assert control.exists()
    report = only(site.area / "reports", "*_report_enrols.txt").read_text()
    assert "rejected, nothing applied" in report


def test_a_default_report_is_named_for_its_format(site: Site) -> None:
    """Plain text is .txt (a spreadsheet would open a .csv), JSON .json."""
    site.write("enrols.csv", CONTROL)
    playbook(site, "post_treatments:\n  - save_report: {}\n  - save_report: {format: json}\n")
    assert site.run().code == 2
    names = sorted(p.name.split("_report_", 1)[1] for p in (site.area / "reports").iterdir())
    assert names == ["enrols.json", "enrols.txt"]
    json.loads(only(site.area / "reports", "*_report_enrols.json").read_text())


def test_save_report_json(site: Site) -> None:
    site.write("enrols.csv", CONTROL)
    playbook(
        site,
        "post_treatments:\n  - save_report: {dest: 'reports/{{ file.stem }}.json', format: json}\n",
    )
    result = site.run("--diff")
    assert "--- /dev/null\n+++ reports/enrols.json\n" in result.out
    report = json.loads((site.area / "reports" / "enrols.json").read_text())
    assert report["lines"] == {"total": 5, "changed": 3, "unchanged": 0, "failed": 2}
    assert report["failed_lines"][0] == {
        "number": 4,
        "text": 'add;MATH101;U9999;"student";gaddcreate;"Groupe été"',
        "message": "no such user (idnumber U9999)",
    }
    assert report["report"][0] == "line 3: add student U0001 in MATH101: ok"
    assert report["control_file"]["encoding"] == "iso8859-1"


@pytest.mark.parametrize(
    "post,message",
    [
        (
            "  - archive_control_files: {compress: zip}\n",
            "post_treatments[0].archive_control_files.compress: 'zip' is not one of",
        ),
        (
            "  - save_report: {dest: ../outside.txt}\n",
            "post_treatments[0].save_report.dest: ../outside.txt resolves to",
        ),
        (
            "  - write_retry_file: {dest: '{{ file.nme }}'}\n",
            "post_treatments[0].write_retry_file.dest:",
        ),
        (
            "  - delete_control_files: {force: true}\n",
            "delete_control_files.force: unknown key 'force'; this takes no parameters",
        ),
    ],
)
def test_bad_parameters_are_located(site: Site, post: str, message: str) -> None:
    control = site.write("enrols.csv", CONTROL)
    path = playbook(site, "post_treatments:\n" + post)
    before = site.dump()
    result = site.run()
    assert result.code == 4, result.out
    assert f"{path}:9:" in result.err
    assert message in result.err
    assert "Traceback" not in result.err
    assert site.dump() == before
    assert control.read_bytes() == CONTROL


def test_purge_never_deletes_a_control_file_awaiting_sync(site: Site) -> None:
    control = site.write("enrols.csv", CONTROL)
    old = time.time() - 100 * 86400
    os.utime(control, (old, old))
    stale = make_file(site.area / "old-notes.txt", days=100)
    post = (
        "post_treatments:\n  - purge_old_files: {paths: ['.'], older_than_days: 90}\n"
        "    tags: [housekeeping]\n"
    )
    playbook(site, post)
    result = site.run("--tags", "housekeeping")
    assert result.code == 0, result.out
    assert "1 control file awaiting sync kept" in result.out
    assert control.exists()
    assert not stale.exists()


def test_a_preview_saves_no_record_and_post_check_leaves_the_record(site: Site) -> None:
    site.write("enrols.csv", CONTROL)
    post = "post_treatments:\n  - save_report: {}\n    tags: [post]\n"
    playbook(site, post)
    assert site.run("--check").code == 2
    assert not (site.area / ".postsync").exists()  # no lock, no record, no directory
    assert site.run("--skip-tags", "post").code == 2
    record = only(site.area / ".postsync" / "runs", "*.json")
    saved, tree = record.read_bytes(), snapshot(site.root)
    preview = site.cli("post", record, "--check")
    assert preview.code == 2, preview.out
    assert record.read_bytes() == saved
    assert snapshot(site.root) == tree  # nothing written, nothing pruned
    assert not (site.area / "reports").exists()
    real = site.cli("post", record)
    assert real.code == 2, real.out + real.err
    assert items(real.out) == items(preview.out)
    assert len(list((site.area / "reports").iterdir())) == 1


def test_post_refuses_a_record_of_a_preview(site: Site) -> None:
    """Records of --check runs (earlier postsync versions saved them) are refused."""
    site.write("enrols.csv", CONTROL)
    playbook(site, "post_treatments:\n  - save_report: {}\n    tags: [post]\n")
    assert site.run("--skip-tags", "post").code == 2
    record = only(site.area / ".postsync" / "runs", "*.json")
    record.write_text(record.read_text().replace('"check": false', '"check": true'))
    result = site.cli("post", record)
    assert result.code == 4
    assert "this record is from a --check run" in result.err
    assert site.cli("post", record, "--check").code == 2


def test_preview_of_an_overwriting_archive_then_delete(site: Site) -> None:
    control = site.write("enrols.csv", CONTROL)
    post = (
        "post_treatments:\n"
        "  - archive_control_files: {dest: archives/enrols.csv, on_conflict: overwrite}\n"
        "  - delete_control_files: {}\n"
    )
    playbook(site, post)
    make_file(site.area / "archives" / "enrols.csv", content="last year's file\n")
    preview = site.run("--check")
    assert control.exists()
    real = site.run()
    assert items(preview.out) == items(real.out)
    assert items(real.out)[-2:] == [
        f"    archive enrols.csv -> archives/enrols.csv  ({len(CONTROL)} bytes,"
        " replaces a different file)",
        "    delete enrols.csv  (archived)",
    ]
    assert (site.area / "archives" / "enrols.csv").read_bytes() == CONTROL


# values a control file can carry into its report: terminal escapes, line and paragraph
# separators, NEL, CR, a C1 control, and cells a spreadsheet evaluates
HOSTILE = [
    'add;MATH101;"U1\u2028line 9: add student U0009 in MATH101: ok";student;;\n',
    'add;MATH101;"U2\x1b[2J\x1b[31m";student;;\n',
    'add;MATH101;"U3\x85line 10: forged\u2029line 11: forged";student;;\n',
    'add;MATH101;"U4\rline 12: forged\x9b";student;;\n',
    'add;MATH101;"U5;=HYPERLINK(""http://x.example/"",""click"")";student;;\n',
    'add;MATH101;"U6, @SUM(1+1)";student;;\n',
    "add;MATH101;\"U7;  +cmd|' /C calc'!A0\";student;;\n",
    'add;MATH101;"U8;-2+3";student;;\n',
]
FORMULA_CELL = re.compile(r'(^|[;,|\t])\s*"?\s*[=+\-@]')


def test_a_saved_report_shows_values_escaped_and_no_formula(site: Site) -> None:
    site.write("enrols.csv", "cmd;cid;uid;rolename;gcmd;g1\n" + "".join(HOSTILE))
    playbook(
        site,
        "post_treatments:\n  - save_report: {dest: 'reports/{{ file.name }}'}\n"
        "  - save_report: {dest: 'reports/{{ file.stem }}.json', format: json}\n",
        "  - command: enrolments\n    file: enrols*.csv\n",
    )
    result = site.run("--diff", "-v")
    assert result.code == 2, result.out
    text = (site.area / "reports" / "enrols.csv").read_text()
    lines = text.splitlines()  # at every separator str knows (U+2028, NEL...)
    assert len(lines) == 3 + len(HOSTILE), lines
    assert lines[0].startswith("postsync report of run ")
    assert lines[1].startswith("control file: ")
    assert lines[2].startswith("result: 8 lines: 0 changed, 0 unchanged, 8 failed")
    for number, line in enumerate(lines[3:], start=2):
        assert line.startswith(f"line {number}: add student U{number - 1}"), line
        assert line.isprintable(), line
        assert not FORMULA_CELL.search(line), line
    assert "U2\\x1b[2J\\x1b[31m" in lines[4]
    assert "U1\\u2028line 9: add student U0009" in lines[3]
    assert 'U5;\'=HYPERLINK("http://x.example/"' in lines[7]
    assert "U6,' @SUM(1+1)" in lines[8]
    raw = (site.area / "reports" / "enrols.json").read_text()
    for char in "\x1b\u2028\u2029\x85\r\x9b":
        assert char not in raw
    report = json.loads(raw)  # still one JSON document, the values intact in it
    assert report["failed_lines"][1]["text"] == HOSTILE[1].rstrip("\n")
    assert report["report"][2].startswith("line 4: add student U3\x85line 10")
    # the --diff of both reports, and -v's line by line outcomes, show them escaped too
    assert "        line 5: add student U4\\rline 12: forged\\x9b" in result.out
    for char in "\x1b\u2028\u2029\x85\r\x9b":
        assert char not in result.out


USERS_HEADER = b"username;idnumber;firstname;lastname;auth;password\r\n"
PASSWORDS = ["Good-Pass-111", "Hunter2-Pw-9f3", "Pw;with-sep-77", 'Pw"quoted"-55']
USERS_LINES = [
    b"p1;U1;Ann;One;manual;Good-Pass-111\r\n",
    b"p2;U2;Bob;Two;ldap;Hunter2-Pw-9f3\r\n",  # ldap keeps no password: fails
    b'p3;U3;Cy;Three;ldap;"Pw;with-sep-77"\r\n',
    b'p4;U4;Di;Four;ldap;"Pw""quoted""-55"\r\n',
]
USERS_POST = """\
post_treatments:
  - save_report: {}
  - save_report: {dest: "reports/{{ file.stem }}.json", format: json}
  - archive_control_files: {}
  - archive_control_files: {dest: "gz/{{ file.name }}.gz", compress: gzip}
  - write_retry_file: {}
"""


def test_a_users_files_passwords_are_never_shown_and_its_copies_stay_private(
    site: Site,
) -> None:
    """Passwords appear in no output (text, JSON, --diff, -v), report or run record;
    the retry file is still the failed lines byte for byte, rebuilt by `post` from the
    control file or its archive; every copy of a 0600 file is 0600."""
    control = site.write("userimport.csv", USERS_HEADER + b"".join(USERS_LINES))
    control.chmod(0o600)
    playbook(site, USERS_POST, "  - command: users\n    file: userimport*.csv\n")
    same_minute()
    outputs = [site.run("--check", "--diff", "-v"), site.run("--diff", "-v")]
    assert outputs[1].code == 2, outputs[1].out
    assert "+p2;U2;Bob;Two;ldap;***" in outputs[1].out  # the retry file's --diff
    assert "+p3;U3;Cy;Three;ldap;***" in outputs[1].out
    control.write_bytes(control.read_bytes() + b"p5;U5;Ed;Five;ldap;Hunter2-Pw-9f3\r\n")
    outputs.append(site.run("--output", "json"))
    outputs.append(site.run("--output", "jsonl"))
    for result in outputs:
        for password in PASSWORDS:
            for form in (password, json.dumps(password)[1:-1]):
                assert form not in result.out + result.err, result.out
    written = [p for p in site.area.rglob("*") if p.is_file() and p != control]
    kept = {p.relative_to(site.area).parts[0] for p in written}
    assert {"reports", "archives", "gz", ".postsync"} <= kept
    for path in written:
        content = path.read_bytes()
        if path.suffix == ".gz":
            content = gzip.decompress(content)
        if "archives" in path.parts or "gz" in path.parts or "_tryback_" in path.name:
            assert b"Hunter2-Pw-9f3" in content  # what keeps the file's bytes
        else:
            for password in PASSWORDS[1:]:
                for form in (password, json.dumps(password)[1:-1]):
                    assert form.encode() not in content, path
        if ".postsync" not in path.parts:  # the records are 0640 and hold no password
            assert path.stat().st_mode & 0o777 == 0o600, path
    report = json.loads(only(site.area / "reports", "userimport.json").read_text())
    assert report["failed_lines"][0]["text"] == "p2;U2;Bob;Two;ldap;***"
    # the retry file: the failed lines as read, passwords and all
    retry = max(site.area.glob("userimport_tryback_*"), key=os.path.getmtime)
    expected = USERS_HEADER + b"".join(USERS_LINES[1:]) + b"p5;U5;Ed;Five;ldap;Hunter2-Pw-9f3\r\n"
    assert retry.read_bytes() == expected
    # `post` writes it again from the control file, then from its archive
    record = max((site.area / ".postsync" / "runs").glob("*.json"), key=os.path.getmtime)
    entry = json.loads(record.read_text())["control_files"][0]
    assert [line["raw"] for line in entry["failed_lines"]] == [None] * 4
    for gone in (retry, control):
        retry.unlink()
        gone.unlink(missing_ok=True)
        again = site.cli("post", record)
        assert again.code == 2, again.out  # the record's failed lines
        assert "write_retry_file  (1 retry file)" in again.out
        assert retry.read_bytes() == expected
        assert retry.stat().st_mode & 0o777 == 0o600


def test_a_users_files_lines_that_do_not_line_up_with_the_header_are_not_shown(
    site: Site,
) -> None:
    """A failed line whose values do not line up with a header that has a password
    column (one value too many, a separator in the password, a stray quote, a NUL,
    bytes not UTF-8, a short line putting the password under another column) is shown
    as *** whole: no password in any output, report, run record or marker."""
    header = b"USERNAME;FirstName;LastName;Email;PASSWORD;auth\r\n"
    lines = [
        b"u0001;Jean;Pierre;Dupont;u1@example.org;PWshift1;manual\r\n",
        b"u0004;A;B;u4@example.org;PWe;ee5;manual\r\n",
        b'u0020;"Bob;Smith;u20@example.org;PWquote1;manual\r\n',
        b"u0030;Ann;Lee;PWshort30\r\n",
        b"u0040;A;B;u40@example.org;PWnul40\x00;manual\r\n",
        b"u0041;A;B;u41@example.org;PW\xffbad41;manual\r\n",
    ]
    secrets = ["PWshift1", "PWe", "ee5", "PWquote1", "PWshort30", "PWnul40", "bad41"]
    control = site.write("userimport.csv", header + b"".join(lines))
    playbook(site, USERS_POST, "  - command: users\n    file: userimport*.csv\n")
    same_minute()
    outputs = [site.run("--check", "--diff", "-v"), site.run("--check", "--output", "json")]
    outputs.append(site.run("--diff", "-v"))
    assert outputs[-1].code == 2, outputs[-1].out
    for result in outputs:
        for secret in secrets:
            assert secret not in result.out + result.err, (secret, result.out)
    assert "+*** (line not shown: its values do not line up" in outputs[-1].out
    report = json.loads(only(site.area / "reports", "userimport.json").read_text())
    assert [line["text"][:3] for line in report["failed_lines"]] == ["***"] * len(lines)
    written = [p for p in site.area.rglob("*") if p.is_file() and p != control]
    assert any(".postsync" in p.parts for p in written)
    for path in written:
        if "archives" in path.parts or "gz" in path.parts or "_tryback_" in path.name:
            continue  # what keeps the file's bytes
        content = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in content, (secret, path)


def test_purge_keep_last_counts_what_the_run_stores_in_the_preview_too(site: Site) -> None:
    """keep_last counts the newest files of a directory: in a run, this run's archives and
    reports are among them; the preview counts those it would store, so both say the
    same (the preview once said 13 newest files kept where the run said 19)."""
    for n in range(4):
        make_file(site.area / "archives" / f"2026010{n}-0100_enrols.csv", days=200 + n)
        make_file(site.area / "reports" / f"2026010{n}-0100_report_enrols.txt", days=200 + n)
    site.write("enrols.csv", CONTROL)
    purge = "  - purge_old_files: {paths: [archives, reports], older_than_days: 90, keep_last: 3}\n"
    playbook(site, NIGHTLY + purge)
    same_minute()
    preview = site.run("--check")
    result = site.run()
    assert result.code == 2, result.out
    step = [line for line in result.out.splitlines() if "purge_old_files" in line]
    assert step == [
        "CHANGED  purge_old_files  (4 files older than 90 days,"
        " the 6 newest files kept (keep_last))"
    ]
    assert step == [line for line in preview.out.splitlines() if "purge_old_files" in line]
    assert items(preview.out) == items(result.out)
