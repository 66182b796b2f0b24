"""The undo's files: its control files (`;`-separated UTF-8, CSV quoting), the playbook
that applies them in order (`undo.yml`) and the notes on what they do not reverse
(`NOTES.txt`); written atomically, all or none, never over an existing file nor
through a symlink."""

from __future__ import annotations

import csv
import io
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.core import faults
from runner.core.errors import StepError
from runner.core.interpreter import uninterrupted
from runner.storage.atomic import AtomicFile
from runner.undo.lines import SPECS, Written

PLAYBOOK = "undo.yml"
NOTES = "NOTES.txt"


@dataclass(frozen=True)
class UndoFile:
    """A written control file: its name, command, step options, columns and lines
    (each with the journal line it reverses)."""

    name: str
    command: str
    options: dict[str, Any]
    columns: tuple[str, ...]
    lines: list[tuple[list[str], str]]

    def text(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, delimiter=";", lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows(values for values, _origin in self.lines)
        return out.getvalue()


def undo_files(written: Written) -> list[UndoFile]:
    """The written lines as files, in the order they are applied."""
    files: list[UndoFile] = []
    for spec, (command, common, columns) in SPECS.items():
        for key in sorted(k for k in written.lines if k.partition(":")[0] == spec):
            files.append(_file(len(files) + 1, command, common, columns, key, written.lines[key]))
    return files


def _file(
    number: int,
    command: str,
    common: dict[str, Any],
    columns: tuple[str, ...],
    key: str,
    lines: list[tuple[dict[str, str], str]],
) -> UndoFile:
    options = dict(common)
    if ":" in key:
        options["membership_component"] = key.partition(":")[2]
    if not columns:  # as many columns as the lines restore, the others as they are
        seen: dict[str, None] = {}
        for values, _origin in lines:
            seen.update(dict.fromkeys(values))
        columns = tuple(seen)
    rows = [([values.get(c, "") for c in columns], origin) for values, origin in lines]
    return UndoFile(f"{number:02d}_{command}.csv", command, options, columns, rows)


def notes_text(run_id: str, notes: Sequence[tuple[str, str]]) -> str:
    head = (
        f"# What the undo of run {run_id} does not reverse, by the line of the run that"
        " made the change.\n"
    )
    return head + "".join(f"{origin}: {text}\n" for origin, text in notes)


def playbook_text(
    run_id: str,
    name: str,
    database: dict[str, Any],
    files: Sequence[UndoFile],
    extra: dict[str, Any],
) -> str:
    import yaml

    steps = []
    for f in files:
        step = {"name": f.name, "command": f.command, "file": f.name, "settle_seconds": 0}
        step.update(f.options)
        for key, value in extra.get(f.command, {}).items():
            step.setdefault(key, value)
        steps.append(step)
    body = {"name": f"undo of run {run_id} ({name})", "area": ".", **database, "sync": steps}
    head = (
        f"# Written by `postsync undo` for run {run_id}: its control files, applied in\n"
        "# this order, reverse what the run changed (NOTES.txt: what they do not).\n"
        f"#   postsync run {PLAYBOOK} --check    # preview\n"
        f"#   postsync run {PLAYBOOK}            # apply\n"
    )
    return head + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)


def _directory(where: Path) -> None:
    """`where` made if missing (its parents too), never a symlink."""
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(where, 0o750)
    except FileExistsError:
        if not os.path.lexists(where):  # a parent is a file
            raise StepError(
                f"cannot make the directory {where}: a parent is not a directory;"
                " give a directory you can write with --into"
            ) from None
        if not stat.S_ISDIR(os.lstat(where).st_mode):
            raise StepError(
                f"{where} exists and is not a directory (a symlink is not followed):"
                " give another directory with --into"
            ) from None
    except OSError as exc:
        raise StepError(
            f"cannot make the directory {exc.filename or where}: {exc.strerror};"
            " give a directory you can write with --into"
        ) from None


def write_all(where: Path, texts: dict[str, tuple[str, int]]) -> None:
    """Each file (name: text, mode) in `where`, all or none; StepError naming the file
    already there or the directory that refuses them."""
    _directory(where)
    there = [name for name in texts if os.path.lexists(where / name)]
    if there:
        raise StepError(
            f"{where / there[0]} exists: an undo never overwrites a file (delete the"
            " directory's files of an earlier undo, or give another directory with --into)"
        )
    done: list[Path] = []
    try:
        for name, (text, mode) in texts.items():
            with AtomicFile(where / name, mode=mode) as out:
                out.write_all(text.encode("utf-8"))
                out.sync()
                with uninterrupted():  # a file in place is one to remove
                    out.commit()
                    done.append(where / name)
            faults.point("undo.written")
    except BaseException as exc:  # interrupted too (Ctrl-C, SIGTERM): none left
        for path in done:
            path.unlink(missing_ok=True)
        if not isinstance(exc, OSError):
            raise
        raise StepError(
            f"cannot write {exc.filename or where}: {exc.strerror}; nothing was written"
            " (give a directory you can write with --into)"
        ) from None
