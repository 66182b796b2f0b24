"""moodle_events: the run's journal as the replay reads it (each part opened safely,
each line checked before anything of it is replayed), the feed it hands the PHP
script, and the replay's progress kept beside the parts (RUN_ID/events.progress)."""

from __future__ import annotations

import errno
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from runner.core.errors import StepError
from runner.record.journal import JOURNAL_SUFFIX
from runner.storage import paths
from runner.storage.atomic import AtomicFile

#: the replay's progress, beside the parts: the last `seq` replayed of each part
PROGRESS = "events.progress"
#: the journal's kinds, and Moodle's event each is replayed as (None: none)
EVENTS: dict[str, str | None] = {
    "user_enrolment_created": "user_enrolment_created",
    "user_enrolment_updated": "user_enrolment_updated",
    "user_enrolment_deleted": "user_enrolment_deleted",
    "role_assigned": "role_assigned",
    "role_unassigned": "role_unassigned",
    "group_member_added": "group_member_added",
    "group_member_removed": "group_member_removed",
    "enrol_instance_created": "enrol_instance_created",
    "group_created": "group_created",
    "group_updated": "group_updated",
    "group_deleted": "group_deleted",
    "grouping_created": "grouping_created",
    "grouping_updated": "grouping_updated",
    "grouping_deleted": "grouping_deleted",
    "grouping_group_assigned": "grouping_group_assigned",
    "cohort_created": "cohort_created",
    "cohort_updated": "cohort_updated",
    "cohort_deleted": "cohort_deleted",
    "cohort_member_added": "cohort_member_added",
    "cohort_member_removed": "cohort_member_removed",
    "user_created": "user_created",
    "user_updated": "user_updated",
    "user_deleted": "user_deleted",
    # what a last unenrolment deletes besides: Moodle triggers no event of its own
    "course_left": None,
}


#: the deletions whose journal line is preceded by what they take with them, each of
#: those lines marked `"with": KIND`
OWNERS = ("user_deleted", "cohort_deleted")


def cascade_events(lines: list[dict[str, Any]]) -> tuple[Counter[str], int]:
    """The events Moodle triggers for what a deletion takes with it (the lines marked
    `with`, before the deletion's own line), and how many of those lines have none.

    delete_user unenrols the user through each enrolment's plugin (unenrol_user:
    user_enrolment_deleted, with role_unassigned for the roles in the course and, at
    the course's last enrolment, group_member_removed for its group memberships), then
    role_unassign_all triggers role_unassigned for the roles left; it deletes the
    cohort memberships, and the memberships of groups in courses where the user had no
    enrolment, without an event. cohort_delete_cohort deletes its members without one.
    Counted as if every enrolment's plugin were enabled on the site (the journal does
    not know): Moodle deletes an enrolment of a disabled plugin without an event, and
    the replay, which knows, says so per line."""
    courses = {
        line["courseid"]
        for line in lines
        if line["with"] == "user_deleted" and line["kind"] == "user_enrolment_deleted"
    }
    events: Counter[str] = Counter()
    silent = 0
    for line in lines:
        kind = line["kind"]
        has_event = kind in ("user_enrolment_deleted", "role_unassigned") or (
            kind == "group_member_removed" and line.get("courseid") in courses
        )
        if line["with"] == "user_deleted" and has_event:
            events[kind] += 1
        else:
            silent += 1
    return events, silent


#: the event Moodle triggers before a user's user_created or user_updated when the line
#: gave a password (update_internal_user_password, called by user_create_user and
#: user_update_user through the auth plugin)
PASSWORD_EVENT = "user_password_updated"


def events_of(line: dict[str, Any]) -> tuple[str, ...]:
    """The events one journal line is replayed as, in Moodle's order."""
    event = EVENTS[line["kind"]]
    if event is None:
        return ()
    if _password_set(line):
        return (PASSWORD_EVENT, event)
    return (event,)


def _password_set(line: dict[str, Any]) -> bool:
    """A user created or updated with a password the line gave (not the 'not cached'
    of a change to an auth keeping no password in Moodle: no password was given,
    Moodle triggers nothing): the journal's `password_set`."""
    return line["kind"] in ("user_created", "user_updated") and line.get("password_set") is True


@dataclass
class Tally:
    """What the replay has to do: the events to trigger by name, the journal lines
    already replayed, those with no event of their own."""

    events: Counter[str] = field(default_factory=Counter)
    done: int = 0
    silent: int = 0
    parts: int = 0

    @property
    def total(self) -> int:
        return sum(self.events.values())


def journal_parts(run_dir: Path) -> list[Path]:
    """The parts of the run's journal in `run_dir`, in order (none: no directory)."""
    try:
        names = sorted(n for n in os.listdir(run_dir) if n.endswith(JOURNAL_SUFFIX))
    except FileNotFoundError:
        return []
    return [run_dir / name for name in names]


def _open_part(path: Path, shown: str) -> IO[bytes]:
    """A part opened for reading: a regular file, never through a symlink, never
    waiting on a FIFO."""
    try:
        fd, _ = paths.open_regular(path)
    except paths.NotRegular as exc:
        raise StepError(f"{shown} is {exc.what}: not read, nothing replayed") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StepError(f"{shown} is a symbolic link: not followed, nothing replayed") from None
        raise StepError(f"{shown}: {exc.strerror or exc}: nothing replayed") from None
    return os.fdopen(fd, "rb")


def read_part(path: Path, shown: str) -> Iterator[dict[str, Any]]:
    """A part's lines, each checked: a JSON object of a known kind, its `seq` the
    line's number. A line that is not raises StepError naming the part and the line,
    before any line is replayed (callers read the whole journal first)."""
    with _open_part(path, shown) as stream:
        for number, raw in enumerate(stream, 1):
            problem = None
            try:
                line = json.loads(raw)
            except ValueError as exc:
                problem = f"not JSON ({exc.__class__.__name__}: {exc})"
            else:
                if not isinstance(line, dict):
                    problem = "not a JSON object"
                elif line.get("kind") not in EVENTS:
                    problem = f"unknown kind {str(line.get('kind'))[:40]!r}"
                elif line.get("with", OWNERS[0]) not in OWNERS:
                    problem = f"its with is {str(line.get('with'))[:40]!r}, not a deletion"
                elif line.get("seq") != number:
                    problem = f"its seq is {str(line.get('seq'))[:20]}, not {number}"
                elif not raw.endswith(b"\n"):
                    problem = "cut short (no end of line)"
            if problem is not None:
                raise StepError(
                    f"{shown}, line {number}: {problem}; the journal is damaged, nothing replayed"
                )
            yield line


def read_progress(run_dir: Path) -> dict[str, int]:
    """What the replay did so far, as its progress file says (none: nothing)."""
    path = run_dir / PROGRESS
    try:
        with _open_part(path, str(path)) as stream:
            data = json.loads(stream.read(1 << 20))
    except StepError:
        if not os.path.lexists(path):
            return {}
        raise
    except ValueError:
        raise StepError(f"{path}: not the replay's progress (not JSON)") from None
    parts = data.get("parts") if isinstance(data, dict) else None
    if not isinstance(parts, dict) or not all(
        isinstance(k, str) and isinstance(v, int) for k, v in parts.items()
    ):
        raise StepError(f"{path}: not the replay's progress")
    return dict(parts)


def write_progress(run_dir: Path, parts: dict[str, int]) -> None:
    """The replay's progress, replaced whole (never seen half written)."""
    text = json.dumps({"parts": dict(sorted(parts.items()))}, indent=1) + "\n"
    with AtomicFile(run_dir / PROGRESS, mode=0o640) as out:
        out.write_all(text.encode())
        out.commit(replace=True)


def tally(parts: list[tuple[Path, str]], done: dict[str, int]) -> Tally:
    """The events the journal's parts (path, as users see it) hold past `done`."""
    out = Tally()
    for path, shown in parts:
        out.parts += 1
        last = done.get(path.name, 0)
        taken: list[dict[str, Any]] = []  # what the deletion to come takes with it
        for line in read_part(path, shown):
            if line["seq"] <= last:
                out.done += 1
                continue
            if "with" in line:
                taken.append(line)
                continue
            _count(out, taken)
            taken = []
            events = events_of(line)
            if not events:
                out.silent += 1
            out.events.update(events)
        _count(out, taken)
    return out


def _count(out: Tally, taken: list[dict[str, Any]]) -> None:
    events, silent = cascade_events(taken)
    out.events.update(events)
    out.silent += silent


def write_feed(parts: list[tuple[Path, str]], done: dict[str, int], feed: IO[str]) -> int:
    """The lines still to replay, each with its part's name (`part`) and, where Moodle
    triggers user_password_updated first, `password_updated`, one JSON object a line,
    to `feed`: how many. Every line is checked before the script gets any."""
    count = 0
    for path, shown in parts:
        last = done.get(path.name, 0)
        for line in read_part(path, shown):
            if line["seq"] > last:
                line["part"] = path.name
                if _password_set(line):
                    line["password_updated"] = True
                feed.write(json.dumps(line, separators=(",", ":")) + "\n")
                count += 1
    return count


def said_progress(said: str) -> dict[str, int]:
    """The progress the script printed (`progress PART SEQ`, after each batch it
    committed): the last of each part."""
    out: dict[str, int] = {}
    for text in said.splitlines():
        words = text.split()
        if len(words) == 3 and words[0] == "progress" and words[2].isdigit():
            out[words[1]] = max(out.get(words[1], 0), int(words[2]))
    return out
