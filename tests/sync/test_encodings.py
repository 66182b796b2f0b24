"""A file's declared encoding checked against its bytes (runner/sync/encodings.py),
through `postsync run` on real files shaped like tool_sync's samples (`;`, CRLF).

A file declared in a single-byte encoding whose lines decode as UTF-8 is rejected whole,
nothing applied, in the preview as in the run; so is a file declared ISO-8859-1 holding
C1 control characters (a cp1252 export). A real ISO-8859-1 file applies."""

from __future__ import annotations

from typing import Any

import pytest

from runner.sync.encodings import EncodingCheck
from tests.sync.conftest import Site
from tests.sync.test_enrolments import report

#: tool_sync's enrolment sample's columns (tests/webservices/enrol_sample.csv)
ENROL_HEADER = "cmd;cid;uid;rolename;enrol;gcmd;g1;g2;g3\r\n"
USERS_HEADER = "username;firstname;lastname;idnumber;email;lang\r\n"


def steps(command: str, encoding: str) -> str:
    pattern = "enrols*.csv" if command == "enrolments" else "userimport*.csv"
    return f"  - command: {command}\n    file: {pattern}\n    encoding: {encoding}\n"


def rejected(site: Site, command: str, encoding: str) -> tuple[str, str]:
    """The step's output of a preview then a run of the area's file, both rejected with
    nothing changed in the database and the file left in place; (preview, run)."""
    site.playbook(steps(command, encoding))
    before = site.dump()
    files = sorted(p.name for p in site.area.iterdir() if p.is_file())
    outputs = []
    for args in (("--check",), ()):
        result = site.run(*args)
        assert result.code == 3, result.out + result.err
        assert "(rejected: nothing of it applied, left in place)" in result.out
        assert site.dump() == before
        outputs.append(result.out)
    assert sorted(p.name for p in site.area.iterdir() if p.is_file()) == files
    return outputs[0], outputs[1]


def names(site: Site, idnumber: str) -> list[tuple[Any, ...]]:
    return site.query("SELECT firstname, lastname FROM mdl_user WHERE idnumber = :i", i=idnumber)


def test_a_utf8_file_declared_latin1_is_rejected_whole(site: Site) -> None:
    """One line of four has accents, in UTF-8: the same wrong declaration for the whole
    file, so none of its lines is applied (the ASCII ones neither)."""
    text = (
        USERS_HEADER
        + "adupont;Anne;Dupont;N0100;anne.dupont@example.org;fr\r\n"
        + "bmartin;Bruno;Martin;N0101;bruno.martin@example.org;fr\r\n"
        + "hlefevre;Hélène;Lefèvre;N0102;helene.lefevre@example.org;fr\r\n"
    )
    site.write("userimport.csv", text.encode("utf-8"))
    preview, run = rejected(site, "users", "iso-8859-1")
    message = (
        'userimport.csv: line 4: "Hélène" is UTF-8 (bytes c3 a9 for "é"), which iso8859-1'
        ' would store as "HÃ©lÃ¨ne": the file looks like UTF-8 (its one line with'
        " non-ASCII bytes decodes as UTF-8); declare `encoding: utf-8` on its sync step"
    )
    assert message in preview
    assert message in run
    assert names(site, "N0100") == []
    # declared as it is, it applies, accents intact
    site.playbook(steps("users", "utf-8"))
    assert site.run().code == 0
    assert names(site, "N0102") == [("Hélène", "Lefèvre")]


def test_a_mostly_utf8_file_is_rejected_and_says_how_many_lines(site: Site) -> None:
    lines = [
        "add;MATH101;U0001;student;manual;gaddcreate;Géologie;;\r\n",
        "add;MATH101;U0002;student;manual;gaddcreate;Écologie;;\r\n",
    ]
    body = (ENROL_HEADER + "".join(lines)).encode() + (
        "add;MATH101;U0003;student;manual;gaddcreate;Été;;\r\n".encode("latin-1")
    )
    site.write("enrols.csv", body)
    _preview, run = rejected(site, "enrolments", "cp1252")
    assert 'enrols.csv: line 2: "Géologie" is UTF-8 (bytes c3 a9 for "é"), which' in run
    assert "(2 of its 3 lines with non-ASCII bytes decode as UTF-8)" in run


def test_cp1252_bytes_declared_latin1_are_rejected_naming_cp1252(site: Site) -> None:
    line = "add;MATH101;U0001;student;manual;gaddcreate;Groupe d\u2019été;Cœur;\r\n"
    site.write("enrols.csv", (ENROL_HEADER + line).encode("cp1252"))
    preview, run = rejected(site, "enrolments", "iso-8859-1")
    message = (
        "enrols.csv: line 2: byte 92 is a C1 control character in iso8859-1, which no text"
        ' holds, and "\u2019" in cp1252 ("Groupe d\u2019été"): is the file cp1252? Declare'
        " `encoding: cp1252` on its sync step"
    )
    assert message in preview
    assert message in run
    site.playbook(steps("enrolments", "cp1252"))
    assert site.run().code == 0
    assert site.groups_of("MATH101", "U0001") == ["Cœur", "Groupe d\u2019été"]


def test_a_latin1_file_with_accents_applies(site: Site) -> None:
    """tool_sync's enrolment sample's shape in ISO-8859-1: a comment, CRLF, accents;
    one name's bytes happen to form UTF-8 ("É" then a no-break space: c9 a0), which the
    file's other accented lines outvote."""
    lines = [
        "# export du SI - année 2026\r\n",
        ENROL_HEADER,
        "add;MATH101;U0001;editingteacher;manual;gaddcreate;Géologie;Élèves;\r\n",
        "add;MATH101;U0002;student;manual;gaddcreate;CAFÉ\u00a0B;;\r\n",
        "add;MATH101;U0003;student;manual;gadd;Géologie;;\r\n",
    ]
    site.write("enrols.csv", "".join(lines).encode("latin-1"))
    site.playbook(steps("enrolments", "iso-8859-1"))
    result = site.run()
    assert result.code == 0, result.out
    assert sorted(site.groups_of("MATH101", "U0001")) == ["Géologie", "Élèves"]
    assert site.groups_of("MATH101", "U0002") == ["CAFÉ\u00a0B"]
    assert report(site)[0] == "line 3: add editingteacher U0001 in MATH101: ok"


def test_ascii_files_and_utf8_comments_apply_in_any_single_byte_encoding(site: Site) -> None:
    """Pure ASCII data reads the same in every such encoding; a comment is never
    stored, so its encoding (UTF-8 here) does not matter."""
    for number, encoding in enumerate(("iso-8859-1", "cp1252", "iso-8859-15"), start=1):
        body = f"# exporté le 24/11\r\n{ENROL_HEADER}add;MATH101;U000{number};student;;;;;\r\n"
        site.write("enrols.csv", body.encode("utf-8"))
        site.playbook(steps("enrolments", encoding))
        result = site.run()
        assert result.code == 0, result.out
        assert site.enrolled("MATH101", f"U000{number}") == [("student", 0)]


def test_a_utf8_header_is_named_as_the_encoding_not_as_an_unknown_column(site: Site) -> None:
    site.write("userimport.csv", "username;prénom;lastname\r\nx;y;z\r\n".encode())
    _preview, run = rejected(site, "users", "iso-8859-1")
    assert 'userimport.csv: line 1: "prénom" is UTF-8 (bytes c3 a9 for "é")' in run
    assert "unknown column" not in run


def test_the_last_line_rejects_a_long_file_and_every_batch_is_undone(site: Site) -> None:
    """The verdict comes once every line is seen, after batches were applied in the
    file's transaction: they are rolled back, nothing is committed."""
    lines = [f"add;MATH101;U{1 + i % 200:04d};student;manual;;;;\r\n" for i in range(20_000)]
    body = (ENROL_HEADER + "".join(lines)).encode() + (
        "add;MATH101;U0201;student;manual;gaddcreate;Sécurité;;\r\n".encode()
    )
    site.write("enrols.csv", body)
    _preview, run = rejected(site, "enrolments", "iso-8859-1")
    assert 'enrols.csv: line 20002: "Sécurité" is UTF-8' in run
    assert site.enrolled("MATH101", "U0150") == []


@pytest.mark.parametrize(
    ("encoding", "checked", "c1"),
    [
        ("iso-8859-1", True, True),
        ("latin-1", True, True),
        ("iso-8859-15", True, True),
        ("iso-8859-2", True, True),
        ("cp1252", True, False),
        ("mac-roman", True, False),
        ("utf-8", False, False),
        ("utf-8-sig", False, False),
        ("shift_jis", False, False),
        ("gbk", False, False),
    ],
)
def test_which_declared_encodings_are_checked(encoding: str, checked: bool, c1: bool) -> None:
    """Single-byte encodings are checked against UTF-8; C1 bytes only in ISO-8859 parts;
    multi-byte ones (UTF-8, Shift JIS, GBK) are not."""
    check = EncodingCheck.of(encoding)
    assert (check.active, check.c1) == (checked, c1)
