"""The control-file dialect, through `postsync run` on real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.sync.reader import Columns, ControlFile, ControlFileError, Dialect
from tests.sync.conftest import ENROLMENTS_STEP, Site
from tests.sync.test_enrolments import report

COLUMNS = Columns(("rolename", "cid", "uid"), ("cmd", "gcmd", "g1", "g2"))


def read(path: Path, encoding: str = "utf-8", separator: str = ";") -> list[tuple[int, object]]:
    control = ControlFile(path, Dialect(encoding, separator), COLUMNS)
    return [(line.number, line.values or line.error) for line in control.lines()]


def test_iso_8859_1_with_accents(site: Site) -> None:
    site.write(
        "enrols.csv",
        "cid;uid;rolename;gcmd;g1\nMATH101;U0001;student;gaddcreate;Géologie élève\n",
        encoding="iso-8859-1",
    )
    step = ENROLMENTS_STEP + "    encoding: iso-8859-1\n"
    assert site.run(steps=step).code == 0
    assert site.groups_of("MATH101", "U0001") == ["Géologie élève"]
    # the same bytes read as UTF-8: the line fails, clearly, and nothing else happens
    site.write(
        "enrols.csv",
        "cid;uid;rolename;gcmd;g1\nMATH102;U0002;student;gaddcreate;Géologie\n",
        encoding="iso-8859-1",
    )
    result = site.run(steps=ENROLMENTS_STEP)
    assert result.code == 2
    assert report(site) == ["line 2: failed: invalid bytes for encoding utf-8"]


def test_cp1252(site: Site) -> None:
    site.write(
        "enrols.csv",
        "cid;uid;rolename;gcmd;g1\nMATH101;U0003;student;gaddcreate;Œuvre \u2013 1\n",
        encoding="cp1252",
    )
    assert site.run(steps=ENROLMENTS_STEP + "    encoding: cp1252\n").code == 0
    assert site.groups_of("MATH101", "U0003") == ["Œuvre \u2013 1"]


def test_bom_comments_blank_lines_and_crlf(site: Site) -> None:
    body = (
        "\ufeff# exported 2026-11-24\r\n"
        "// another comment\r\n"
        "\r\n"
        "(comment\r\n"
        "[comment\r\n"
        "- comment\r\n"
        " indented comment\r\n"
        "cid;uid;rolename\r\n"
        "# between\r\n"
        "MATH101;U0004;student\r\n"
    )
    site.write("enrols.csv", body)
    assert site.run(steps=ENROLMENTS_STEP).code == 0
    assert report(site) == ["line 10: add student U0004 in MATH101: ok"]


def test_comma_separator_quoting_and_free_column_order(site: Site) -> None:
    site.write(
        "enrols.csv",
        "uid,g1,rolename,cid,gcmd\n"
        'U0005,"Group, with comma",student,MATH101,gaddcreate\n'
        '"U0006"," Padded ""quoted"" ",student," MATH101 ",gaddcreate\n',
    )
    assert site.run(steps=ENROLMENTS_STEP + '    separator: ","\n').code == 0
    assert site.groups_of("MATH101", "U0005") == ["Group, with comma"]
    assert site.groups_of("MATH101", "U0006") == ['Padded "quoted"']


def test_a_100000_character_line(site: Site) -> None:
    name = "G" * 100_000
    site.write(
        "enrols.csv",
        f"cid;uid;rolename;gcmd;g1\nMATH101;U0007;student;gadd;{name}\nMATH101;U0008;student;;\n",
    )
    result = site.run(steps=ENROLMENTS_STEP)
    assert result.code == 2
    lines = report(site)
    assert lines[0].startswith("line 2: add student U0007 in MATH101: failed: no group 'GGGG")
    assert lines[1] == "line 3: add student U0008 in MATH101: ok"


@pytest.mark.parametrize(
    "content,message",
    [
        (
            "cid;uid;rolename;cid\nMATH101;U0001;student;X\n",
            "line 1: column 'cid' appears twice in the header",
        ),
        (
            "cid;uid;role\n",
            "line 1: unknown column 'role'; known: rolename, cid, uid, cmd, enrol,"
            " starttime, endtime, gcmd, g1, g2, g3, g4, g5, g6, g7, g8, g9",
        ),
        ("# c\ncid;uid\nMATH101;U0001\n", "line 2: missing required column 'rolename'"),
        (
            "cid,uid,rolename\nMATH101,U0001,student\n",
            "line 1: unknown column 'cid,uid,rolename' (is the separator ';' right?)",
        ),
    ],
)
def test_bad_headers_reject_the_whole_file(site: Site, content: str, message: str) -> None:
    before = site.dump()
    site.write("enrols.csv", content)
    result = site.run(steps=ENROLMENTS_STEP)
    assert result.code == 3
    assert f"FAILED   enrolments  (enrols.csv: {message}" in result.out
    assert "sync enrols.csv  (rejected: " in result.out
    assert site.dump() == before


@pytest.mark.parametrize("content", ["", "# only a comment\n\n", "cid;uid;rolename\n"])
def test_empty_and_header_only_files_have_no_lines(site: Site, content: str) -> None:
    site.write("enrols.csv", content)
    result = site.run("--output", "json", steps=ENROLMENTS_STEP)
    assert result.code == 0, result.out
    doc = json.loads(result.out)
    assert doc["steps"][0]["status"] == "ok"
    assert doc["steps"][0]["items"][0]["detail"] == "0 lines: 0 changed, 0 unchanged, 0 failed"


def test_raw_bytes_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b'\xef\xbb\xbfcid;uid;rolename\r\nM\xc3\xa9;U1;student\r\nX;"Y;student\n')
    control = ControlFile(path, Dialect("utf-8", ";"), COLUMNS)
    lines = list(control.lines())
    assert [line.raw for line in lines] == [b"M\xc3\xa9;U1;student\r\n", b'X;"Y;student\n']
    assert lines[0].values == {"cid": "Mé", "uid": "U1", "rolename": "student"}
    assert lines[1].error == "unbalanced quote"
    assert control.digest.bom is True
    assert control.header is not None and control.header.raw == b"cid;uid;rolename\r\n"
    assert control.digest.size == path.stat().st_size


@pytest.mark.parametrize("encoding", ["iso-8859-1", "cp1252"])
def test_a_bom_in_a_file_declared_in_a_one_byte_encoding_is_rejected(
    tmp_path: Path, encoding: str
) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"\xef\xbb\xbfcid;uid;rolename\nGroupe \xc3\x89t\xc3\xa9;U1;student\n")
    control = ControlFile(path, Dialect(encoding, ";"), COLUMNS)
    with pytest.raises(ControlFileError, match="byte order mark but is declared"):
        list(control.lines())
    assert control.digest.size == path.stat().st_size  # read whole: archive, delete


def test_nul_bytes_and_undecodable_header(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"cid;uid;rolename\nM\x00;U1;student\n")
    assert read(path) == [(2, "line contains a NUL byte")]
    path.write_bytes(b"c\xffid;uid;rolename\n")
    with pytest.raises(ControlFileError, match="line 1: header is not valid utf-8"):
        read(path)
