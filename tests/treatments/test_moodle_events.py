"""moodle_events without PHP: the journal's parts as the replay reads them (checked
whole, never through a symlink, a FIFO or a directory), its progress file, the counts
the preview shows, and the script's progress read from its output."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from runner.core.errors import StepError
from runner.treatments.events_journal import (
    journal_parts,
    read_progress,
    said_progress,
    tally,
    write_feed,
    write_progress,
)

LINES = [
    {"seq": 1, "kind": "user_enrolment_created", "enrolid": 2, "userid": 3},
    {"seq": 2, "kind": "role_assigned", "contextid": 5, "userid": 3, "roleid": 5},
    {"seq": 3, "kind": "course_left", "contextid": 5, "userid": 4},
    {"seq": 4, "kind": "role_assigned", "contextid": 5, "userid": 4, "roleid": 5},
]


def part(tmp_path: Path, name: str = "001_enrols.csv.journal", lines: list | None = None) -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(line) + "\n" for line in lines or LINES))
    return path


def test_the_preview_counts_the_events_past_the_progress(tmp_path: Path) -> None:
    first = part(tmp_path)
    second = part(tmp_path, "002_groups.csv.journal", [{"seq": 1, "kind": "group_deleted"}])
    parts = [(p, p.name) for p in journal_parts(tmp_path)]
    assert [p for p, _ in parts] == [first, second]
    counted = tally(parts, {})
    assert dict(counted.events) == {
        "user_enrolment_created": 1,
        "role_assigned": 2,
        "group_deleted": 1,
    }
    assert (counted.silent, counted.done, counted.total) == (1, 0, 4)
    later = tally(parts, {first.name: 2})
    assert dict(later.events) == {"role_assigned": 1, "group_deleted": 1}
    assert (later.done, later.silent) == (2, 1)


def test_the_feed_holds_the_lines_left_with_their_part(tmp_path: Path) -> None:
    first = part(tmp_path)
    out = tmp_path / "feed"
    with open(out, "w") as feed:
        assert write_feed([(first, "x")], {first.name: 3}, feed) == 1
    (line,) = [json.loads(t) for t in out.read_text().splitlines()]
    assert line["seq"] == 4 and line["part"] == first.name


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('{"seq":1,"kind":"role_assigned"}\n{"seq":2,"kind":"role_ass', "line 2: not JSON"),
        ('{"seq":1,"kind":"role_assigned"}\n[1]\n', "line 2: not a JSON object"),
        ('{"seq":1,"kind":"dropped_table"}\n', "line 1: unknown kind 'dropped_table'"),
        ('{"seq":2,"kind":"role_assigned"}\n', "line 1: its seq is 2, not 1"),
        ('{"seq":1,"kind":"role_assigned"}', "line 1: cut short"),
    ],
)
def test_a_damaged_part_names_its_file_and_line(tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "001_x.journal"
    path.write_text(text)
    with pytest.raises(StepError, match="nothing replayed") as caught:
        tally([(path, "runs/R/001_x.journal")], {})
    assert f"runs/R/001_x.journal, {said}" in str(caught.value)


def test_a_symlink_fifo_or_directory_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    target = part(tmp_path / "elsewhere")
    link = tmp_path / "001_a.journal"
    link.symlink_to(target)
    with pytest.raises(StepError, match="is a symbolic link: not followed"):
        tally([(link, link.name)], {})
    fifo = tmp_path / "002_b.journal"
    os.mkfifo(fifo)
    with pytest.raises(StepError, match="is not a regular file"):  # and never hangs
        tally([(fifo, fifo.name)], {})
    directory = tmp_path / "003_c.journal"
    directory.mkdir()
    with pytest.raises(StepError, match="is a directory"):
        tally([(directory, directory.name)], {})


def test_the_progress_file_round_trips_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    assert read_progress(tmp_path) == {}
    write_progress(tmp_path, {"002_b.journal": 4, "001_a.journal": 9})
    assert read_progress(tmp_path) == {"001_a.journal": 9, "002_b.journal": 4}
    (tmp_path / "events.progress").write_text("[1, 2]")
    with pytest.raises(StepError, match="not the replay's progress"):
        read_progress(tmp_path)
    assert journal_parts(tmp_path / "none") == []


def test_the_scripts_progress_is_the_last_it_printed_per_part() -> None:
    said = "progress 001_a.journal 500\nnote x\nprogress 001_a.journal 1000\nprogress 002_b 7\n"
    assert said_progress(said + "progress 3 x\n") == {"001_a.journal": 1000, "002_b": 7}
